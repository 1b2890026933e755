//! The direct operations of a [`Cache`](crate::Cache) (`get`, `set`, `exists`, `get_ttl`,
//! `increment`, `get_many`, `set_many`): each is one backend call through the breaker, with the
//! failure policy, the counters and the read path's rules (lease markers and keys a pending
//! invalidation covers are no values). Deletes are in [`invalidation`](super::invalidation).

use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Policy, Read};
use crate::backend::Backend;
use crate::error::CacheError;
use crate::stats::Event;
use crate::telemetry::At;

impl Policy {
    /// The value under `key`, `None` when it is absent or no value of `V`.
    pub(crate) async fn get<V: DeserializeOwned + Serialize>(
        &self,
        key: &str,
    ) -> Result<Option<V>, CacheError> {
        let at = At::Key(key).resolved();
        match self.read(key, at).await {
            Read::Value(bytes) => Ok(self.decode(key, at, &bytes)),
            Read::Absent | Read::Leased => {
                self.count(Event::Miss, at, 1);
                Ok(None)
            }
            Read::Failed(error) => {
                self.count(Event::Miss, at, 1);
                self.settle(Err(error), None)
            }
        }
    }

    /// Encodes `value` and stores it under `key` for `ttl` (`None`: the default TTL).
    pub(crate) async fn set<V: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &V,
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        if self.store().is_none() {
            return Ok(());
        }
        let bytes = self.encode(value)?;
        self.set_bytes(key, bytes, ttl).await
    }

    /// Stores `bytes` under `key` exactly as given, unless they look like a lease marker.
    pub(crate) async fn set_bytes(
        &self,
        key: &str,
        bytes: Bytes,
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        let Some(store) = self.store() else {
            return Ok(());
        };
        self.check_size(bytes.len())?;
        if crate::lease::is_marker(&bytes) {
            // Every caller of the key would take it for another caller's computation.
            return Err(CacheError::Encode(
                "these bytes have the shape of a lease marker, which no value has".to_owned(),
            ));
        }
        let ttl = ttl.unwrap_or(self.config().default_ttl());
        let result = self
            .guarded(store, |s| async move { s.set(key, bytes, ttl).await })
            .await;
        if result.is_ok() {
            self.count(Event::Set, At::Key(key), 1);
        }
        self.policy("set", At::Key(key), result, ())
    }

    /// Whether `key` holds a value: not a lease marker, not covered by a pending invalidation.
    pub(crate) async fn exists(&self, key: &str) -> Result<bool, CacheError> {
        let Some(store) = self.store() else {
            return Ok(false);
        };
        if !self.trusted(key) {
            return Ok(false);
        }
        let result = self
            .guarded(store, |s| async move { s.exists(key).await })
            .await;
        self.policy("exists", At::Key(key), result, false)
    }

    /// The time the value under `key` has left (see [`exists`](Self::exists)).
    pub(crate) async fn ttl(&self, key: &str) -> Result<Option<Duration>, CacheError> {
        let Some(store) = self.store() else {
            return Ok(None);
        };
        if !self.trusted(key) {
            return Ok(None);
        }
        let result = self
            .guarded(store, |s| async move { s.ttl(key).await })
            .await;
        self.policy("get_ttl", At::Key(key), result, None)
    }

    /// Adds `amount` to the counter under `key`; 0 when caching is off or, failing silently, on
    /// a failure.
    pub(crate) async fn increment(&self, key: &str, amount: i64) -> Result<i64, CacheError> {
        let Some(store) = self.store() else {
            return Ok(0);
        };
        let result = self
            .guarded(store, |s| async move { s.increment(key, amount).await })
            .await;
        self.policy("increment", At::Key(key), result, 0)
    }

    /// The values under `keys`, in order, in one round trip.
    pub(crate) async fn get_many<V: DeserializeOwned + Serialize>(
        &self,
        keys: &[&str],
    ) -> Result<Vec<Option<V>>, CacheError> {
        let misses = || keys.iter().map(|_| None).collect::<Vec<_>>();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let Some(store) = self.store() else {
            return Ok(misses());
        };
        let result = self
            .guarded(store, |s| async move { s.get_many(keys).await })
            .await;
        let values = match result {
            Ok(values) => values,
            Err(e) => {
                self.count(Event::Miss, At::Keys, keys.len() as u64);
                return self.policy("get_many", At::Keys, Err(e), misses());
            }
        };
        Ok(keys
            .iter()
            .zip(values)
            .map(|(key, bytes)| match bytes {
                Some(bytes) if !crate::lease::is_marker(&bytes) && self.trusted(key) => {
                    self.decode(key, At::Key(key), &bytes)
                }
                _ => {
                    self.count(Event::Miss, At::Key(key), 1);
                    None
                }
            })
            .collect())
    }

    /// Encodes and stores every pair for `ttl` (`None`: the default TTL) in one round trip.
    pub(crate) async fn set_many<K: Into<String>, V: Serialize>(
        &self,
        items: impl IntoIterator<Item = (K, V)>,
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        let Some(store) = self.store() else {
            return Ok(());
        };
        let items = items
            .into_iter()
            .map(|(k, v)| {
                let bytes = self.encode(&v)?;
                self.check_size(bytes.len())?;
                Ok((k.into(), bytes))
            })
            .collect::<Result<Vec<(String, Bytes)>, CacheError>>()?;
        if items.is_empty() {
            return Ok(());
        }
        let count = items.len() as u64;
        let ttl = ttl.unwrap_or(self.config().default_ttl());
        let result = self
            .guarded(store, |s| async move { s.set_many(items, ttl).await })
            .await;
        if result.is_ok() {
            self.count(Event::Set, At::Keys, count);
        }
        self.policy("set_many", At::Keys, result, ())
    }
}
