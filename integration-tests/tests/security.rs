//! Authentication, TLS and hostile input, against real redis-server processes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cache_core::{Cache, CacheConfig, CacheConfigBuilder, CacheError};
use integration_tests::{free_port, RedisServer};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

async fn cache(builder: CacheConfigBuilder) -> Result<Cache, CacheError> {
    Cache::new(
        builder
            .fail_silently(false)
            .socket_timeout(Duration::from_secs(2))
            .pool_size(2)
            .build()
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn acl_users_are_authenticated_and_wrong_credentials_are_never_printed() {
    let server = RedisServer::start_with(&[
        "--user",
        "default",
        "off", // no password-less access
        "--user",
        "app",
        "on",
        ">app-secret-pw",
        "~*",
        "&*",
        "+@all",
    ]);
    let port = server.port();
    let ok =
        cache(CacheConfig::builder().url(format!("redis://app:app-secret-pw@127.0.0.1:{port}/0")))
            .await
            .unwrap();
    ok.set("k", "v", None).await.unwrap();
    assert_eq!(ok.get::<String>("k").await.unwrap().as_deref(), Some("v"));
    assert!(!format!("{ok:?}").contains("app-secret-pw"));

    for url in [
        format!("redis://app:not-the-app-secret-pw@127.0.0.1:{port}/0"),
        format!("redis://nobody:app-secret-pw@127.0.0.1:{port}/0"),
        format!("redis://127.0.0.1:{port}/0"),
    ] {
        let err = cache(CacheConfig::builder().url(&url)).await.unwrap_err();
        let text = format!("{err} | {err:?}");
        assert!(err.is_connection(), "{text}");
        assert!(!text.contains("app-secret-pw"), "{text}");
    }
}

/// A CA, a server certificate for 127.0.0.1 signed by it, and a client certificate, as PEM files.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new() -> Pki {
        let dir =
            std::env::temp_dir().join(format!("cache-tls-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "cache-core test CA");
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf = |names: Vec<String>, usage: ExtendedKeyUsagePurpose| {
            let mut params = CertificateParams::new(names.clone()).unwrap();
            params
                .distinguished_name
                .push(DnType::CommonName, names[0].clone());
            params.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ];
            params.extended_key_usages = vec![usage];
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert, server_key) = leaf(
            vec!["127.0.0.1".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client_cert, client_key) = leaf(
            vec!["cache-client".into()],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        for (name, pem) in [
            ("ca.pem", ca.pem()),
            ("server.pem", server_cert),
            ("server.key", server_key),
            ("client.pem", client_cert),
            ("client.key", client_key),
        ] {
            std::fs::write(dir.join(name), pem).unwrap();
        }
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A server with a TLS port (and a plain one for the harness), clients certificates required
    /// or not.
    fn server(&self, tls_port: u16, client_certs: bool) -> RedisServer {
        let file = |n: &str| self.path(n).to_string_lossy().into_owned();
        RedisServer::start_with(&[
            "--tls-port",
            &tls_port.to_string(),
            "--tls-cert-file",
            &file("server.pem"),
            "--tls-key-file",
            &file("server.key"),
            "--tls-ca-cert-file",
            &file("ca.pem"),
            "--tls-auth-clients",
            if client_certs { "yes" } else { "no" },
        ])
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tls_url(port: u16) -> String {
    format!("rediss://127.0.0.1:{port}/0")
}

#[tokio::test]
async fn rediss_with_a_private_ca_works_and_untrusted_servers_are_refused() {
    let pki = Pki::new();
    let tls_port = free_port();
    let server = pki.server(tls_port, false);
    let trusted = cache(
        CacheConfig::builder()
            .url(tls_url(tls_port))
            .tls_ca(pki.path("ca.pem")),
    )
    .await
    .unwrap();
    trusted.set("over-tls", &42u32, None).await.unwrap();
    assert_eq!(trusted.get::<u32>("over-tls").await.unwrap(), Some(42));
    assert!(trusted.health_check().await.healthy);

    // The system's roots do not know our CA: the handshake fails, loudly.
    let err = cache(CacheConfig::builder().url(tls_url(tls_port)))
        .await
        .unwrap_err();
    assert!(err.is_connection(), "{err}");
    // Plain text to the TLS port never gets an answer that looks like Redis.
    let plain = cache(CacheConfig::builder().url(format!("redis://127.0.0.1:{tls_port}/0"))).await;
    assert!(plain.is_err());
    // What went over the wire was TLS: the value is in Redis, readable on the plain port.
    assert!(matches!(
        server.cmd("EXISTS over-tls"),
        integration_tests::Reply::Integer(1)
    ));
}

#[tokio::test]
async fn mutual_tls_presents_the_client_certificate() {
    let pki = Pki::new();
    let tls_port = free_port();
    let _server = pki.server(tls_port, true);
    let with_cert = cache(
        CacheConfig::builder()
            .url(tls_url(tls_port))
            .tls_ca(pki.path("ca.pem"))
            .tls_client_cert(pki.path("client.pem"), pki.path("client.key")),
    )
    .await
    .unwrap();
    with_cert.set("mtls", "yes", None).await.unwrap();
    assert_eq!(
        with_cert.get::<String>("mtls").await.unwrap().as_deref(),
        Some("yes")
    );

    let without = cache(
        CacheConfig::builder()
            .url(tls_url(tls_port))
            .tls_ca(pki.path("ca.pem")),
    )
    .await;
    assert!(
        without.is_err(),
        "a server requiring client certificates refused us"
    );
}

#[test]
fn tls_settings_from_the_environment_are_checked() {
    let pki = Pki::new();
    let ca = pki.path("ca.pem").to_string_lossy().into_owned();
    let vars = |pairs: &[(&'static str, String)]| {
        let pairs = pairs.to_vec();
        CacheConfig::from_lookup(move |name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        })
    };
    let ok = vars(&[("REDIS_URL", tls_url(6380)), ("REDIS_TLS_CA", ca.clone())]);
    assert!(ok.is_ok(), "{ok:?}");
    let e = vars(&[
        ("REDIS_URL", "redis://127.0.0.1:6380".into()),
        ("REDIS_TLS_CA", ca),
    ])
    .unwrap_err();
    assert_eq!(e.variable, "REDIS_TLS_CA");
    let e = vars(&[
        ("REDIS_URL", tls_url(6380)),
        (
            "REDIS_TLS_CERT",
            pki.path("client.pem").to_string_lossy().into(),
        ),
    ])
    .unwrap_err();
    assert_eq!(e.variable, "REDIS_TLS_CERT");
    assert!(Path::new(&pki.path("client.key")).exists());
}

#[tokio::test]
async fn hostile_keys_and_values_round_trip_or_are_refused_clearly() {
    let server = RedisServer::start();
    let cache = cache(
        CacheConfig::builder()
            .url(server.url())
            .max_value_bytes(64 << 20),
    )
    .await
    .unwrap();
    let long = "x".repeat(10_000);
    let keys = [
        "nul:\0:inside".to_owned(),
        "line\nbreak\r\n".to_owned(),
        "glob:*?[a-z]\\".to_owned(),
        "ユニコード:🔑".to_owned(),
        format!("long:{long}"),
        " ".to_owned(),
    ];
    for (i, key) in keys.iter().enumerate() {
        cache.set(key, &i, None).await.unwrap();
    }
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(cache.get::<usize>(key).await.unwrap(), Some(i), "{key:?}");
    }
    // A glob character in a key is data: escaped, it matches only that key.
    let pattern = cache_keys::pattern::escape("glob:*?[a-z]\\");
    assert_eq!(cache.clear_pattern(&pattern).await.unwrap(), 1);
    assert!(cache.exists(&keys[0]).await.unwrap());

    // Values of 0 bytes and of 50 MB.
    cache.set("empty", &Vec::<u8>::new(), None).await.unwrap();
    assert_eq!(
        cache.get::<Vec<u8>>("empty").await.unwrap(),
        Some(Vec::new())
    );
    let big = vec![0xABu8; 50 << 20];
    cache.set("big", &big, None).await.unwrap();
    let back: Vec<u8> = cache.get("big").await.unwrap().unwrap();
    assert_eq!(back.len(), 50 << 20);
    assert!(back == big);
}

#[tokio::test]
async fn values_over_the_size_limit_are_refused_even_when_failing_silently() {
    let server = RedisServer::start();
    let cache = Cache::new(
        CacheConfig::builder()
            .url(server.url())
            .max_value_bytes(1024)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    assert!(cache.config().fail_silently());
    let err = cache.set("big", &vec![0u8; 2048], None).await.unwrap_err();
    assert!(
        matches!(err, CacheError::ValueTooLarge { max: 1024, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("CACHE_MAX_VALUE_BYTES"), "{err}");
    let err = cache
        .set_many([("a", vec![0u8; 10]), ("b", vec![0u8; 4096])], None)
        .await
        .unwrap_err();
    assert!(matches!(err, CacheError::ValueTooLarge { .. }), "{err}");
    assert!(
        !cache.exists("a").await.unwrap(),
        "nothing of a refused batch is written"
    );
    assert!(!cache.exists("big").await.unwrap());
    cache.set("small", &vec![0u8; 100], None).await.unwrap();
}

#[tokio::test]
async fn a_value_of_another_type_under_a_key_is_a_miss_not_garbage() {
    let server = RedisServer::start();
    let cache = cache(CacheConfig::builder().url(server.url()))
        .await
        .unwrap();
    // Same bytes on the wire in bincode: a u64 and an i64, a String and a Vec<u8>.
    cache.set("n", &7u64, None).await.unwrap();
    assert_eq!(cache.get::<i64>("n").await.unwrap(), None);
    assert_eq!(cache.get::<u64>("n").await.unwrap(), Some(7));
    cache.set("s", "ab", None).await.unwrap();
    assert_eq!(cache.get::<Vec<u8>>("s").await.unwrap(), None);
    assert_eq!(
        cache.get::<String>("s").await.unwrap().as_deref(),
        Some("ab")
    );
    // They decode, but into values of another shape than the one written.
    assert_eq!(cache.stats().schema_mismatches, 2);
    assert_eq!(cache.stats().corrupt, 0);
}
