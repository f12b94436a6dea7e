//! The admin API's wire types (`/admin/v1`), shared by the broker, the CLI (`--json`
//! output, and `--admin-url` which reads them back) and the console.
//!
//! Setting names follow RFC 7591 (dynamic client registration) where it has one
//! (`client_name`, `scope`, `token_endpoint_auth_method`, `client_secret_expires_at`,
//! `contacts`, `jwks`, `jwks_uri`, ...); the others are this broker's (INTERFACE §5).
//! Errors are RFC 9457 problem details ([`Problem`]).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// How a client authenticates at the token endpoint (RFC 7591 §2,
/// `token_endpoint_auth_method`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// A secret in HTTP Basic (RFC 6749 §2.3.1); `client_secret_post` is accepted too.
    #[default]
    ClientSecretBasic,
    /// A secret in the form body; Basic is accepted too.
    ClientSecretPost,
    /// A JWT assertion signed with one of the client's keys (RFC 7523 §2.2).
    PrivateKeyJwt,
    /// A client certificate from a trusted CA, matched by subject (RFC 8705 §2.1).
    TlsClientAuth,
    /// A self-signed client certificate registered in the client's JWKS (RFC 8705 §2.2).
    SelfSignedTlsClientAuth,
}

impl AuthMethod {
    pub const ALL: [AuthMethod; 5] = [
        Self::ClientSecretBasic,
        Self::ClientSecretPost,
        Self::PrivateKeyJwt,
        Self::TlsClientAuth,
        Self::SelfSignedTlsClientAuth,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::TlsClientAuth => "tls_client_auth",
            Self::SelfSignedTlsClientAuth => "self_signed_tls_client_auth",
        }
    }

    /// Whether the client authenticates with a shared secret.
    pub fn uses_secret(self) -> bool {
        matches!(self, Self::ClientSecretBasic | Self::ClientSecretPost)
    }
}

impl std::str::FromStr for AuthMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown token_endpoint_auth_method '{s}'; use one of: {}",
                    Self::ALL.map(Self::as_str).join(", ")
                )
            })
    }
}

impl std::fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn default_true() -> bool {
    true
}

/// Integers as JSON Schema counts them: a number with no fractional part, so `60.0`
/// is the integer 60 (JSON Schema 2020-12 §6.1.1; generators and some JSON libraries
/// write whole numbers that way). serde's integers refuse `60.0`; these take it.
pub mod whole {
    use serde::Deserializer;
    use serde::de::{Error, Visitor};
    use std::fmt;

    struct Whole;

    impl Visitor<'_> for Whole {
        type Value = i128;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an integer")
        }
        fn visit_i64<E: Error>(self, v: i64) -> Result<i128, E> {
            Ok(v.into())
        }
        fn visit_u64<E: Error>(self, v: u64) -> Result<i128, E> {
            Ok(v.into())
        }
        fn visit_f64<E: Error>(self, v: f64) -> Result<i128, E> {
            if v.fract() == 0.0 && v.abs() < 1e30 {
                Ok(v as i128)
            } else {
                Err(E::custom(format_args!("{v} is not an integer")))
            }
        }
    }

    fn fit<T: TryFrom<i128>, E: Error>(v: i128) -> Result<T, E> {
        T::try_from(v).map_err(|_| E::custom(format_args!("{v} is out of range")))
    }

    pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        fit(d.deserialize_any(Whole)?)
    }

    pub fn i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        fit(d.deserialize_any(Whole)?)
    }

    pub fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        Ok(match serde::Deserialize::deserialize(d)? {
            None => None,
            Some(WholeValue(v)) => Some(fit(v)?),
        })
    }

    pub fn opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        Ok(match serde::Deserialize::deserialize(d)? {
            None => None,
            Some(WholeValue(v)) => Some(fit(v)?),
        })
    }

    /// A whole number, for the optional forms above.
    struct WholeValue(i128);

    impl<'de> serde::Deserialize<'de> for WholeValue {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(Whole).map(WholeValue)
        }
    }
}

/// A client's settings: what `POST /admin/v1/clients` takes, what a JSON merge patch
/// (RFC 7396) changes, and what every client shows (INTERFACE §5).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ClientSettings {
    /// Unique, human-readable; 1 to 200 characters without control characters.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 200,
            pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
        )
    )]
    pub client_name: String,
    /// The scopes the client may request, space separated (RFC 6749 §3.3).
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[\u0021\u0023-\u005B\u005D-\u007E ]*$")
    )]
    pub scope: String,
    /// The `aud` values its tokens may carry; the first is the default, a token
    /// request picks another with `audience=` or `resource=` (RFC 8707). Empty: the
    /// broker's issuer. Each 1 to 2000 characters without spaces or control characters.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 50, inline,
        value_type = Vec<AudienceValue>))]
    pub audience: Vec<String>,
    /// Its tokens' lifetime in seconds; `null`: the broker's `--token-ttl`.
    #[serde(default, deserialize_with = "whole::opt_u64")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 2678400))]
    pub access_token_ttl: Option<u64>,
    /// Static claims added to its JWTs. Registered names (`iss sub aud exp nbf iat
    /// jti client_id scope cnf`) are refused.
    #[serde(default)]
    pub extra_claims: Map<String, Value>,
    /// A cap on successful token requests per minute (`429` above it), 1 to 1,000,000;
    /// `null`: none.
    #[serde(default, deserialize_with = "whole::opt_u32")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1_000_000))]
    pub tokens_per_minute: Option<u32>,
    /// `client_secret_basic` (default) or `client_secret_post`: both are accepted for
    /// a client with a secret; `private_key_jwt` (RFC 7523 §2.2) with `jwks` or
    /// `jwks_uri`: no secret, assertions signed by the client's key;
    /// `tls_client_auth` (RFC 8705 §2.1) with `tls_client_auth_subject_dn`, or
    /// `self_signed_tls_client_auth` (§2.2) with its certificate as an `x5c` in `jwks`
    /// or `jwks_uri`: no secret, the TLS client certificate authenticates. A client
    /// without its keys or DN yet is refused, saying so, until they are set.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = String,
        pattern = "^(client_secret_basic|client_secret_post|private_key_jwt|tls_client_auth|self_signed_tls_client_auth)$"))]
    pub token_endpoint_auth_method: AuthMethod,
    /// The client's public keys, a JWK Set (RFC 7517 §5), for `private_key_jwt`
    /// (RFC 7523 §2.2) and `self_signed_tls_client_auth` (RFC 8705 §2.2); at most one
    /// of `jwks` and `jwks_uri` (RFC 7591 §2). Public members only.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(inline, value_type = Option<JwkSet>))]
    pub jwks: Option<Value>,
    /// Where the client publishes its public keys instead of `jwks`: an `https` URL
    /// (RFC 7591 §2; plain `http` only on the loopback interface, for tests),
    /// fetched with a bounded cache. A patch that sets one of `jwks` and `jwks_uri`
    /// clears the other.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 2000,
            pattern = r"^(https://|http://127\.0\.0\.1:|http://\[::1\]:|http://localhost:)[^\s\u0000-\u001F\u007F-\u009F]+$"
        )
    )]
    pub jwks_uri: Option<String>,
    /// For `tls_client_auth`: the subject distinguished name its certificate must
    /// carry (RFC 8705 §2.1.2), as an RFC 4514 string.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 2000,
            pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
        )
    )]
    pub tls_client_auth_subject_dn: Option<String>,
    /// Its tokens must be DPoP-bound: a token request without a valid DPoP proof is
    /// refused (RFC 9449 §5.2). Not supported yet: only `false` is accepted.
    #[serde(default)]
    pub dpop_bound_access_tokens: bool,
    /// Unix time after which the secret stops working; 0: never (RFC 7591 §3.2.1). A
    /// time already past expires the current secret now.
    #[serde(default, deserialize_with = "whole::i64")]
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub client_secret_expires_at: i64,
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Who to ask about this client (e-mail addresses, free text).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 20, inline,
        value_type = Vec<ContactValue>))]
    pub contacts: Vec<String>,
    /// Free text for operators: at most 2000 characters; line breaks and tabs are the
    /// only control characters.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 2000,
            pattern = r"^[^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*$"
        )
    )]
    pub description: String,
}

/// One `audience` value (schema only).
#[cfg(feature = "openapi")]
#[derive(utoipa::ToSchema)]
#[schema(
    min_length = 1,
    max_length = 2000,
    pattern = r"^[^\s\u0000-\u001F\u007F-\u009F]+$"
)]
#[allow(dead_code)]
struct AudienceValue(String);

/// One `contacts` value (schema only).
#[cfg(feature = "openapi")]
#[derive(utoipa::ToSchema)]
#[schema(
    min_length = 1,
    max_length = 200,
    pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
)]
#[allow(dead_code)]
struct ContactValue(String);

/// A registered client, as every interface shows it: its settings, never its secret
/// nor the secret's hash. (Its OpenAPI schema is [`ClientSettings`]' with these members
/// added, written out below: a flattened struct would be an `allOf` that no object
/// can satisfy beside the settings' `additionalProperties: false`.)
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Client {
    pub client_id: String,
    #[serde(flatten)]
    pub settings: ClientSettings,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
    /// While the previous secret still works (a rotation with grace), until when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_expires_at: Option<i64>,
    /// Every token issued to it up to this Unix second is inactive (revoke-tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_revoked_before: Option<i64>,
    /// Changes with every change of the client; its `ETag` is `"<version>"`.
    pub version: i64,
}

/// `POST /admin/v1/clients`: the new client, with its secret shown this once.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CreatedClient {
    #[serde(flatten)]
    pub client: Client,
    /// Shown only here; only a hash is stored. None for a client of a method without
    /// a secret (`private_key_jwt`): it signs assertions with its own key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

/// The members a registered public JWK may have, each a string (RFC 7517 §4, RFC
/// 7518 §6.2.1 and §6.3.1, RFC 8037 §2); the broker refuses any other (a private
/// key's above all) rather than keep it unread.
pub const PUBLIC_JWK_MEMBERS: [&str; 12] = [
    "kty", "kid", "use", "alg", "crv", "x", "y", "n", "e", "x5u", "x5t", "x5t#S256",
];

/// The members of a public JWK that are arrays of strings (RFC 7517 §4.3, §4.7).
pub const PUBLIC_JWK_LISTS: [&str; 2] = ["key_ops", "x5c"];

/// The members only a private JWK has (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2):
/// a client registers, and a DPoP proof carries, public keys only.
pub const PRIVATE_JWK_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

impl CreatedClient {
    /// The answer to a creation: the secret only for a client that authenticates
    /// with one.
    pub fn new(client: Client, secret: &str) -> Self {
        let client_secret = client
            .settings
            .token_endpoint_auth_method
            .uses_secret()
            .then(|| secret.to_owned());
        Self {
            client,
            client_secret,
        }
    }
}

#[cfg(feature = "openapi")]
mod schemas {
    //! The schemas of [`Client`] and [`CreatedClient`]: the settings' object (every
    //! member present in an answer, so all required) with the members around them.

    use super::{Client, ClientSettings, CreatedClient, PUBLIC_JWK_LISTS, PUBLIC_JWK_MEMBERS};
    use utoipa::openapi::schema::{
        AdditionalProperties, AllOfBuilder, AnyOfBuilder, ArrayBuilder, Object, ObjectBuilder,
        Schema, SchemaFormat, Type,
    };
    use utoipa::openapi::{KnownFormat, RefOr};
    use utoipa::{PartialSchema, ToSchema};

    fn settings_object() -> Object {
        match ClientSettings::schema() {
            RefOr::T(Schema::Object(o)) => o,
            _ => Object::new(),
        }
    }

    fn int(description: &str, nullable: bool) -> RefOr<Schema> {
        let t = if nullable {
            utoipa::openapi::schema::SchemaType::from_iter([Type::Integer, Type::Null])
        } else {
            utoipa::openapi::schema::SchemaType::new(Type::Integer)
        };
        ObjectBuilder::new()
            .schema_type(t)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .description(Some(description))
            .into()
    }

    fn string(description: &str) -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(description))
            .into()
    }

    fn client_object() -> Object {
        let mut o = settings_object();
        o.required = o.properties.keys().cloned().collect();
        o.description = Some(
            "A registered client: every setting, never its secret nor the secret's hash.".into(),
        );
        for (name, schema, required) in [
            ("client_id", string("The client's id"), true),
            ("created_at", int("Unix seconds", false), true),
            ("updated_at", int("Unix seconds", false), true),
            (
                "previous_secret_expires_at",
                int("While the previous secret still works, until when", true),
                false,
            ),
            (
                "tokens_revoked_before",
                int(
                    "Every token issued up to this Unix second is inactive",
                    true,
                ),
                false,
            ),
            (
                "version",
                int(
                    "Changes with every change; the ETag is its quoted value",
                    false,
                ),
                true,
            ),
        ] {
            o.properties.insert(name.into(), schema);
            if required {
                o.required.push(name.into());
            }
        }
        o
    }

    impl PartialSchema for Client {
        fn schema() -> RefOr<Schema> {
            RefOr::T(Schema::Object(client_object()))
        }
    }

    impl ToSchema for Client {}

    impl PartialSchema for CreatedClient {
        fn schema() -> RefOr<Schema> {
            let mut o = client_object();
            o.description = Some("The new client, with its secret shown this once.".into());
            o.properties.insert(
                "client_secret".into(),
                string("Shown only here; only a hash is stored. Absent for a private_key_jwt client, which has no secret"),
            );
            RefOr::T(Schema::Object(o))
        }
    }

    impl ToSchema for CreatedClient {}

    /// The body of `PATCH /admin/v1/clients/{client_id}`: a JSON merge patch
    /// (RFC 7396) of [`ClientSettings`]: any of its members, none required; `null`
    /// resets one to its default (not `client_name`, which every client has).
    #[derive(Debug)]
    pub struct ClientPatch;

    impl PartialSchema for ClientPatch {
        fn schema() -> RefOr<Schema> {
            let mut o = settings_object();
            o.required.clear();
            o.description = Some(
                "A JSON merge patch (RFC 7396) of the client's settings: the members given change, null resets one to its default, absent ones stay."
                    .into(),
            );
            for (name, schema) in o.properties.iter_mut() {
                if name != "client_name" {
                    let orig = std::mem::replace(schema, RefOr::T(Schema::default()));
                    *schema = utoipa::openapi::schema::OneOfBuilder::new()
                        .item(orig)
                        .item(ObjectBuilder::new().schema_type(Type::Null))
                        .into();
                }
            }
            one_key_source(o)
        }
    }

    impl ToSchema for ClientPatch {}

    /// The body of `POST /admin/v1/clients`: [`ClientSettings`], with at most one
    /// of `jwks` and `jwks_uri`.
    #[derive(Debug)]
    pub struct NewClientBody;

    impl PartialSchema for NewClientBody {
        fn schema() -> RefOr<Schema> {
            one_key_source(settings_object())
        }
    }

    impl ToSchema for NewClientBody {}

    /// `o`, and RFC 7591 §2's rule: `jwks` and `jwks_uri` are never both given (each
    /// may be absent or null).
    fn one_key_source(o: Object) -> RefOr<Schema> {
        let null = |name: &str| {
            ObjectBuilder::new().property(name, ObjectBuilder::new().schema_type(Type::Null))
        };
        AllOfBuilder::new()
            .item(o)
            .item(
                AnyOfBuilder::new()
                    .item(null("jwks"))
                    .item(null("jwks_uri"))
                    .description(Some("jwks or jwks_uri, not both (RFC 7591 §2)")),
            )
            .into()
    }

    /// A JWK Set of public keys (RFC 7517 §5): 1 to 20 JWKs with the members of
    /// [`PUBLIC_JWK_MEMBERS`] and [`PUBLIC_JWK_LISTS`], `kty` required.
    #[derive(Debug)]
    pub struct JwkSet;

    impl PartialSchema for JwkSet {
        fn schema() -> RefOr<Schema> {
            let string = || ObjectBuilder::new().schema_type(Type::String);
            let mut jwk = ObjectBuilder::new()
                .schema_type(Type::Object)
                .required("kty")
                .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)));
            for m in PUBLIC_JWK_MEMBERS {
                jwk = jwk.property(m, string());
            }
            for m in PUBLIC_JWK_LISTS {
                jwk = jwk.property(m, ArrayBuilder::new().items(string()));
            }
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .required("keys")
                .property(
                    "keys",
                    ArrayBuilder::new()
                        .items(jwk)
                        .min_items(Some(1))
                        .max_items(Some(20)),
                )
                .description(Some(
                    "A JWK Set of the client's public keys (RFC 7517 §5); private members are refused",
                ))
                .into()
        }
    }

    impl ToSchema for JwkSet {}
}

#[cfg(feature = "openapi")]
pub use schemas::{ClientPatch, JwkSet, NewClientBody};

/// `POST /admin/v1/clients/{client_id}/secret`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// How long the old secret keeps working, in seconds (at most 90 days); 0: it
    /// stops at once.
    #[serde(default, deserialize_with = "whole::u64")]
    #[cfg_attr(feature = "openapi", schema(maximum = 7_776_000))]
    pub grace_seconds: u64,
}

/// `POST /admin/v1/keys/rotate`, optionally: the algorithm of the new key.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    /// `ES256`, `EdDSA` or `RS256`; absent: the algorithm this broker signs with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = "^(ES256|EdDSA|RS256)$"))]
    pub alg: Option<String>,
}

/// The answer to a secret rotation: the new secret, shown this once.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RotatedSecret {
    pub client_id: String,
    pub client_secret: String,
    /// When the new secret stops working (the client's setting); 0: never.
    pub client_secret_expires_at: i64,
    /// Until when the old secret keeps working; absent: it stopped at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_expires_at: Option<i64>,
}

/// `GET /admin/v1/clients`: one page.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClientPage {
    pub clients: Vec<Client>,
    /// The cursor of the next page (`after=`); `null` on the last one.
    pub next: Option<String>,
}

/// Whether a key signs new tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// Signs new tokens (one per algorithm).
    Active,
    /// Rotated out: still published while tokens it signed may be valid.
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Retired => "retired",
        }
    }
}

/// A signing key's public facts (its private half never leaves the store).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Key {
    pub kid: String,
    pub alg: String,
    pub state: KeyState,
    /// Unix seconds.
    pub created_at: i64,
    #[serde(default)]
    pub retired_at: Option<i64>,
    /// For a retired key, until when it is published (its last token's expiry plus
    /// leeway), then deleted.
    #[serde(default)]
    pub published_until: Option<i64>,
}

/// `GET /admin/v1/keys`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyList {
    pub keys: Vec<Key>,
}

/// One change, as the audit trail keeps it. Never a secret nor a secret's hash.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEvent {
    pub id: i64,
    /// RFC 3339, UTC.
    pub at: String,
    /// `client:ID`, `cli:USER@HOST` or `broker`.
    pub actor: String,
    /// `client.create`, `client.update`, `client.delete`, `client.secret.rotate`,
    /// `client.tokens.revoke`, `token.revoke`, `key.rotate`.
    pub action: String,
    /// What changed: a client id, a key id.
    pub target: String,
    /// Each changed field: `[old, new]`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub changes: Map<String, Value>,
    #[serde(default)]
    pub request_id: Option<String>,
    #[serde(default)]
    pub peer: Option<String>,
}

/// `GET /admin/v1/audit`: one page, newest first.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    pub next: Option<String>,
}

/// One minute of a client's use.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsagePoint {
    /// The minute's start, RFC 3339 UTC.
    pub t: String,
    /// Tokens issued.
    pub issued: u64,
    /// Failed authentications with this client's id.
    pub failed: u64,
    /// Token requests refused by the client's `tokens_per_minute`.
    pub limited: u64,
}

/// `GET /admin/v1/clients/{client_id}/usage`: per minute, summed over replicas; minutes
/// without any use are left out.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Usage {
    pub client_id: String,
    pub from: String,
    pub to: String,
    pub minutes: Vec<UsagePoint>,
}

/// One bad field of a request (in [`Problem::errors`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    /// The field, as the request named it (`client_name`, `audience[1]`, ...).
    pub field: String,
    pub message: String,
}

/// An RFC 9457 problem detail (`application/problem+json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    /// A URI naming the kind of problem (`about:blank` or this broker's).
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// For bad input, each field at fault.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// The longest grace a rotated-out secret may keep working (90 days).
pub const MAX_GRACE_SECONDS: u64 = 90 * 86_400;

/// The media type of [`Problem`] (RFC 9457 §3).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Claim names a client's `extra_claims` may not use: RFC 7519 §4.1's registered
/// claims, RFC 9068's `client_id` and `scope`, RFC 7800's `cnf`.
pub const REGISTERED_CLAIMS: [&str; 10] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "client_id",
    "scope",
    "cnf",
];

/// RFC 7396 JSON merge patch: `patch` applied to `target`. A `null` member removes
/// the member (the setting falls back to its default); an object is merged member by
/// member; anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in patch {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// RFC 7396 Appendix A, every example.
    #[test]
    fn merge_patch_follows_rfc_7396_appendix_a() {
        let cases = [
            (json!({"a":"b"}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"b"}), json!({"b":"c"}), json!({"a":"b","b":"c"})),
            (json!({"a":"b"}), json!({"a":null}), json!({})),
            (
                json!({"a":"b","b":"c"}),
                json!({"a":null}),
                json!({"b":"c"}),
            ),
            (json!({"a":["b"]}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"c"}), json!({"a":["b"]}), json!({"a":["b"]})),
            (
                json!({"a":{"b":"c"}}),
                json!({"a":{"b":"d","c":null}}),
                json!({"a":{"b":"d"}}),
            ),
            (json!({"a":[{"b":"c"}]}), json!({"a":[1]}), json!({"a":[1]})),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a":"b"}), json!(["c"]), json!(["c"])),
            (json!({"a":"foo"}), json!(null), json!(null)),
            (json!({"a":"foo"}), json!("bar"), json!("bar")),
            (json!({"e":null}), json!({"a":1}), json!({"e":null,"a":1})),
            (json!([1, 2]), json!({"a":"b","c":null}), json!({"a":"b"})),
            (
                json!({}),
                json!({"a":{"bb":{"ccc":null}}}),
                json!({"a":{"bb":{}}}),
            ),
        ];
        for (target, patch, want) in cases {
            let mut t = target.clone();
            merge_patch(&mut t, &patch);
            assert_eq!(t, want, "{target} + {patch}");
        }
    }

    #[test]
    fn a_client_serializes_flat_with_rfc_7591_names() {
        let c = Client {
            client_id: "c1".into(),
            settings: ClientSettings {
                client_name: "billing".into(),
                audience: vec!["https://api".into()],
                enabled: true,
                ..Default::default()
            },
            created_at: 1,
            updated_at: 2,
            previous_secret_expires_at: None,
            tokens_revoked_before: None,
            version: 3,
        };
        let v = serde_json::to_value(&c).unwrap_or_default();
        assert_eq!(v["client_name"], "billing");
        assert_eq!(v["token_endpoint_auth_method"], "client_secret_basic");
        assert_eq!(v["client_secret_expires_at"], 0);
        assert!(v.get("previous_secret_expires_at").is_none());
        let back: Client = serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, c);
    }

    #[test]
    fn whole_numbers_may_carry_a_zero_fraction() {
        let s: ClientSettings = serde_json::from_value(
            json!({"client_name": "x", "access_token_ttl": 60.0, "tokens_per_minute": 5, "client_secret_expires_at": 0.0}),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (s.access_token_ttl, s.tokens_per_minute),
            (Some(60), Some(5))
        );
        for bad in [json!(60.5), json!(-1), json!("60"), json!(1e40)] {
            let r = serde_json::from_value::<ClientSettings>(
                json!({"client_name": "x", "access_token_ttl": bad}),
            );
            assert!(r.is_err(), "{bad}");
        }
        let r: RotateSecret = serde_json::from_value(json!({"grace_seconds": 32.0}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.grace_seconds, 32);
    }

    #[test]
    fn settings_refuse_unknown_fields_and_default_the_rest() {
        let s: ClientSettings =
            serde_json::from_value(json!({"client_name": "x"})).unwrap_or_else(|e| panic!("{e}"));
        assert!(s.enabled);
        assert_eq!(s.token_endpoint_auth_method, AuthMethod::ClientSecretBasic);
        let e = serde_json::from_value::<ClientSettings>(json!({"client_name": "x", "nmae": 1}))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("nmae"), "{e}");
    }
}
