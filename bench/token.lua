-- wrk script: a client-credentials token request per call.
-- The Authorization header comes from the AUTH_HEADER environment variable.
wrk.method = "POST"
wrk.body = "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = os.getenv("AUTH_HEADER")
