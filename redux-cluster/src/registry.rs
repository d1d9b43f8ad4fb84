//! The stores this process masters, by name, for links that serve them.
//!
//! A follower may ask for a store before this process has created it (every
//! process creates its stores at start, in no fixed order with the fork), so
//! a lookup can wait a bounded time for the store to appear.

use crate::error::StartError;
use crate::link::Source;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::Notify;

struct Registry {
    stores: Mutex<HashMap<&'static str, Arc<dyn Source>>>,
    added: Notify,
}

fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| Registry {
        stores: Mutex::new(HashMap::new()),
        added: Notify::new(),
    })
}

/// Adds a store.
pub(crate) fn register(name: &'static str, store: Arc<dyn Source>) -> Result<(), StartError> {
    let r = registry();
    {
        let mut stores = r.stores.lock();
        if stores.contains_key(name) {
            return Err(StartError::DuplicateStore(name));
        }
        stores.insert(name, store);
    }
    r.added.notify_waiters();
    Ok(())
}

/// Removes `store` (on shutdown), if it is the one registered by `name`.
pub(crate) fn unregister(name: &str, store: &Arc<dyn Source>) {
    let mut stores = registry().stores.lock();
    if stores
        .get(name)
        .is_some_and(|s| std::ptr::addr_eq(Arc::as_ptr(s), Arc::as_ptr(store)))
    {
        stores.remove(name);
    }
}

/// The store named `name`, now.
pub(crate) fn get(name: &str) -> Option<Arc<dyn Source>> {
    registry().stores.lock().get(name).cloned()
}

/// The store named `name`, waiting up to `wait` for it to be created.
pub(crate) async fn wait_for(name: &str, wait: Duration) -> Option<Arc<dyn Source>> {
    let r = registry();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let added = r.added.notified();
        tokio::pin!(added);
        added.as_mut().enable();
        if let Some(s) = get(name) {
            return Some(s);
        }
        if tokio::time::timeout_at(deadline, added).await.is_err() {
            return get(name);
        }
    }
}
