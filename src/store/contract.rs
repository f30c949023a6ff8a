//! The behaviour every store must show; each implementation runs these.
use super::*;
use crate::revocations::Covers;

pub fn record(child: &str, client: &str, expires_at: i64) -> ConsumedRefresh {
    ConsumedRefresh {
        child_jti: child.into(),
        access_jti: format!("{child}-at"),
        issued_at: 100,
        consumed_at_ms: 100_000,
        client_id: client.into(),
        access_scope: None,
        access_aud: None,
        expires_at,
        jkt: None,
    }
}

fn system_now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// The record as stored, with the store's stamp replaced by the caller's.
pub fn unstamped(mut stored: ConsumedRefresh) -> ConsumedRefresh {
    stored.consumed_at_ms = 100_000;
    stored
}

pub async fn consumption_happens_once(store: &dyn Store) {
    let before = system_now_ms();
    assert_eq!(store.consume_refresh("s", "parent", record("child-a", "web", i64::MAX / 4)).await.unwrap(), Consumption::First);
    let after = system_now_ms();
    let Consumption::Already(again) = store.consume_refresh("s", "parent", record("child-b", "web", i64::MAX / 4)).await.unwrap() else {
        panic!("the second consumption must see the first");
    };
    assert!(
        (before..=after).contains(&again.consumed_at_ms),
        "stamped by the store when committed, not by the caller: {} not in {before}..={after}",
        again.consumed_at_ms
    );
    assert_eq!(unstamped(again.clone()), record("child-a", "web", i64::MAX / 4));
    assert_eq!(store.consumed_refresh("s", "parent").await.unwrap(), Some(again));
    assert_eq!(store.consumed_refresh("s", "other").await.unwrap(), None);
}

pub async fn revocations_get_increasing_sequence_numbers(store: &dyn Store) {
    let first = store.revoke(vec![Revocation::new(Covers::Token { jti: "t1".into() }, 500)]).await.unwrap();
    let more = store
        .revoke(vec![
            Revocation::new(Covers::Session { sid: "s1".into() }, 600),
            Revocation::new(Covers::Subject { sub: "alice".into(), before: 50 }, 700),
        ])
        .await
        .unwrap();
    assert!(more[0].seq > first[0].seq && more[1].seq > more[0].seq);
    let all = store.revocations_since(0).await.unwrap();
    assert_eq!(all.len(), 3);
    let after_first = store.revocations_since(first[0].seq).await.unwrap();
    assert_eq!(after_first, more);
}

pub async fn expired_entries_are_purged(store: &dyn Store) {
    store
        .revoke(vec![Revocation::new(Covers::Token { jti: "old".into() }, 10), Revocation::new(Covers::Token { jti: "new".into() }, 1_000)])
        .await
        .unwrap();
    store.consume_refresh("s", "old-parent", record("c", "web", 10)).await.unwrap();
    store.consume_refresh("s", "new-parent", record("c2", "web", 1_000)).await.unwrap();
    let removed = store.purge_expired(100).await.unwrap();
    assert_eq!(removed, 2);
    let left = store.revocations_since(0).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].covers, Covers::Token { jti: "new".into() });
    assert_eq!(store.consumed_refresh("s", "old-parent").await.unwrap(), None);
    assert!(store.consumed_refresh("s", "new-parent").await.unwrap().is_some());
}

pub fn code(sid: &str) -> HandoffCode {
    HandoffCode {
        sid: sid.into(),
        sub: "alice".into(),
        client_id: "web".into(),
        scope: None,
        aud: vec!["api".into()],
        custom: Default::default(),
        auth_time: 1,
        session_exp: 1_000,
        code_challenge: "challenge".into(),
        use_by: 100,
        redeemed: false,
        expires_at: 1_000,
        dpop_jkt: None,
    }
}

pub async fn a_code_is_redeemed_once(store: &dyn Store) {
    store.put_code("c1", code("s1")).await.unwrap();
    assert_eq!(store.redeem_code("c1").await.unwrap(), Some(code("s1")));
    let again = store.redeem_code("c1").await.unwrap().unwrap();
    assert!(again.redeemed, "the second presentation sees the first");
    assert_eq!(again.sid, "s1");
    assert_eq!(store.redeem_code("unknown").await.unwrap(), None);
}

pub async fn a_dpop_proof_is_remembered_once(store: &dyn Store) {
    let now = chrono::Utc::now().timestamp();
    assert!(store.remember_proof("p1", now, now + 60).await.unwrap());
    assert!(!store.remember_proof("p1", now, now + 60).await.unwrap(), "a replay");
    assert!(store.remember_proof("p2", now, now + 60).await.unwrap());
}

pub async fn session_index_keeps_the_newest_within_the_limit(store: &dyn Store) {
    let session = |sid: &str, created: i64| SessionRecord {
        sid: sid.into(),
        sub: "bob".into(),
        client_id: "web".into(),
        created_at: created,
        expires_at: 10_000,
        created_stamp: created as u64 * 1000,
    };
    assert!(store.track_session(session("s1", 1), 2).await.unwrap().is_empty());
    assert!(store.track_session(session("s2", 2), 2).await.unwrap().is_empty());
    let evicted = store.track_session(session("s3", 3), 2).await.unwrap();
    assert_eq!(evicted, vec![session("s1", 1)]);
    let mut left: Vec<String> = store.sessions_of("bob").await.unwrap().into_iter().map(|s| s.sid).collect();
    left.sort();
    assert_eq!(left, ["s2", "s3"]);
    assert!(store.sessions_of("nobody").await.unwrap().is_empty());
}

/// Sessions created in one second are ordered by their stamp, not by
/// their random ids, and the one being added always stays.
pub async fn session_index_never_evicts_the_session_being_added(store: &dyn Store) {
    let session = |sid: &str, stamp: u64| SessionRecord {
        sid: sid.into(),
        sub: "carol".into(),
        client_id: "web".into(),
        created_at: 5,
        expires_at: 10_000,
        created_stamp: stamp,
    };
    // "zz" sorts after "aa": a tie broken by sid would evict "aa".
    assert!(store.track_session(session("zz", 5_000_000), 2).await.unwrap().is_empty());
    assert!(store.track_session(session("mm", 5_000_001), 2).await.unwrap().is_empty());
    assert_eq!(store.track_session(session("aa", 5_000_002), 2).await.unwrap(), vec![session("zz", 5_000_000)]);
    // Even a stamp that looks older (a clock stepped back) does not evict the new one.
    assert_eq!(store.track_session(session("00", 1), 2).await.unwrap(), vec![session("mm", 5_000_001)]);
    let mut left: Vec<String> = store.sessions_of("carol").await.unwrap().into_iter().map(|s| s.sid).collect();
    left.sort();
    assert_eq!(left, ["00", "aa"]);
}
