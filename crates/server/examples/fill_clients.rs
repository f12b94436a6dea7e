//! Fills a store with N synthetic clients, for the "1,000,000 clients" load figure.
//!
//! `cargo run --release -p auth-broker-server --example fill_clients -- sqlite://big.db 1000000`
//!
//! Clients are named `fill-N` with secret `fill-secret-N` (hashed as usual). Inserting
//! through the store one by one would take long on SQLite with `synchronous=FULL`, so
//! this writes in large transactions directly; the rows are exactly what
//! `client create` would store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use auth_broker_proto::ClientSecret;
use auth_broker_server::Store;
use auth_broker_server::testing::hash_secret;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args.next().expect("usage: fill_clients DATABASE_URL COUNT");
    let count: u64 = args
        .next()
        .expect("usage: fill_clients DATABASE_URL COUNT")
        .parse()
        .unwrap();
    // Opening runs the migrations, so the schema exists.
    drop(Store::open(&url).await.unwrap());
    let rows = (0..count).map(|i| {
        (
            format!("fill{i:024x}"),
            format!("fill-{i}"),
            hash_secret(&ClientSecret::new(format!("fill-secret-{i}"))),
        )
    });
    if let Some(path) = url.strip_prefix("sqlite://") {
        let mut conn = rusqlite::Connection::open(path).unwrap();
        conn.execute_batch("PRAGMA synchronous = OFF;").unwrap();
        let tx = conn.transaction().unwrap();
        {
            let mut st = tx
                .prepare("INSERT INTO clients (id, name, secret_hash, scopes, enabled, created_at, updated_at) VALUES (?1, ?2, ?3, '', 1, 0, 0)")
                .unwrap();
            for (id, name, hash) in rows {
                st.execute((id, name, hash)).unwrap();
            }
        }
        tx.commit().unwrap();
    } else {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut batch = Vec::new();
        let flush = |batch: &mut Vec<(String, String, String)>| {
            let values: Vec<String> = batch
                .drain(..)
                .map(|(id, name, hash)| format!("('{id}','{name}','{hash}','',TRUE,0,0)"))
                .collect();
            format!(
                "INSERT INTO clients (id, name, secret_hash, scopes, enabled, created_at, updated_at) VALUES {}",
                values.join(",")
            )
        };
        for row in rows {
            batch.push(row);
            if batch.len() == 10_000 {
                client.batch_execute(&flush(&mut batch)).await.unwrap();
            }
        }
        if !batch.is_empty() {
            client.batch_execute(&flush(&mut batch)).await.unwrap();
        }
    }
    println!("inserted {count} clients: ids fill{{i:024x}}, secrets fill-secret-{{i}}");
}
