//! The in-memory list: checks, the feed's watermark and pages, purging.

use super::*;

fn entry(seq: u64, covers: Covers) -> RevocationEntry {
    RevocationEntry { seq, covers, expires_at: 1_000 }
}

fn token(seq: u64) -> RevocationEntry {
    entry(seq, Covers::Token { jti: format!("t{seq}") })
}

/// Everything after `cursor`, and the watermark.
fn since(list: &RevocationList, cursor: u64) -> (Vec<RevocationEntry>, u64) {
    let page = list.page(cursor, usize::MAX);
    (page.entries, page.cursor)
}

fn facts<'a>(jti: &'a str, sid: Option<&'a str>, sub: &'a str, iat: i64) -> TokenFacts<'a> {
    TokenFacts { jti: Some(jti), sid, sub, iat, kid: Some("k1") }
}

#[test]
fn each_kind_of_entry_revokes_what_it_covers() {
    let list = RevocationList::new();
    list.apply(&[
        entry(1, Covers::Token { jti: "t".into() }),
        entry(2, Covers::Session { sid: "s".into() }),
        entry(3, Covers::Subject { sub: "alice".into(), before: 100 }),
    ]);
    assert_eq!(list.check(facts("t", None, "bob", 0)), Some(Revoked::Token));
    assert_eq!(list.check(facts("x", Some("s"), "bob", 0)), Some(Revoked::Session));
    assert_eq!(list.check(facts("x", None, "alice", 100)), Some(Revoked::Subject));
    assert_eq!(list.check(facts("x", None, "alice", 101)), None, "issued after logout-everywhere");
    assert_eq!(list.check(facts("x", Some("other"), "bob", 0)), None);
    list.apply(&[entry(4, Covers::Key { kid: "k1".into() })]);
    assert_eq!(list.check(facts("x", None, "bob", 0)), Some(Revoked::Key));
    assert_eq!(list.watermark(), 4);
}

#[test]
fn a_global_not_before_refuses_every_earlier_token_and_only_those() {
    let list = RevocationList::new();
    assert_eq!(list.not_before(), None);
    list.apply(&[entry(1, Covers::Before { before: 500 })]);
    assert_eq!(list.check(facts("x", Some("s"), "anyone", 500)), Some(Revoked::Before));
    assert_eq!(list.check(facts("x", None, "anyone", 12)), Some(Revoked::Before));
    assert_eq!(list.check(facts("x", Some("s"), "anyone", 501)), None, "issued after the not-before");
    // A later one moves it forward; an earlier one never moves it back.
    list.apply(&[entry(2, Covers::Before { before: 700 }), entry(3, Covers::Before { before: 600 })]);
    assert_eq!(list.not_before(), Some(700));
    assert_eq!(list.check(facts("x", None, "anyone", 650)), Some(Revoked::Before));
    assert_eq!(list.page(0, 100).entries.len(), 3, "announced in the feed");
    list.purge(1_001);
    assert_eq!(list.not_before(), None, "gone once nothing it covers can be valid");
}

#[test]
fn entries_leave_when_they_expire() {
    let list = RevocationList::new();
    list.apply(&[token(1)]);
    list.purge(1_000);
    assert_eq!(list.len(), 1);
    list.purge(1_001);
    assert!(list.is_empty());
    assert_eq!(list.check(facts("t1", None, "x", 0)), None);
}

#[test]
fn the_feed_waits_for_a_gap_to_fill_and_never_skips() {
    let list = RevocationList::new();
    let mut live = list.subscribe();
    list.apply(&[token(1), token(3)]);
    // 3 is checked at once but not published while 2 is missing.
    assert!(list.check(facts("t3", None, "x", 0)).is_some());
    assert_eq!(since(&list, 0), (vec![token(1)], 1));
    list.apply(&[token(2)]);
    assert_eq!(since(&list, 1), (vec![token(2), token(3)], 3));
    let seqs: Vec<u64> = std::iter::from_fn(|| live.try_recv().ok()).map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2, 3]);
    // Duplicates change nothing.
    list.apply(&[token(2)]);
    assert!(live.try_recv().is_err());
}

#[test]
fn a_snapshot_with_purged_gaps_sets_the_watermark() {
    let list = RevocationList::new();
    list.load(&[token(5), token(9)], 9);
    assert_eq!(list.watermark(), 9);
    assert_eq!(since(&list, 5), (vec![token(9)], 9));
    list.apply(&[token(10)]);
    assert_eq!(list.watermark(), 10);
}

#[test]
fn a_followed_mirror_checks_own_writes_at_once_and_publishes_in_stream_order() {
    let list = RevocationList::followed();
    let mut live = list.subscribe();
    let big = |n: u64| token(1_800_000_000_000_000 + n);
    list.apply(&[big(2)]);
    assert!(list.check(facts(&format!("t{}", 1_800_000_000_000_002u64), None, "x", 0)).is_some());
    assert_eq!(since(&list, 0).0, vec![], "not in the feed before the stream brings it");
    list.follow(&[big(1), big(2)]);
    assert_eq!(since(&list, 0), (vec![big(1), big(2)], big(2).seq));
    let seqs: Vec<u64> = std::iter::from_fn(|| live.try_recv().ok()).map(|e| e.seq).collect();
    assert_eq!(seqs, [big(1).seq, big(2).seq]);
}

#[test]
fn pages_walk_the_list_without_gap_or_repeat_and_end_at_the_watermark() {
    let list = RevocationList::new();
    list.apply(&(1..=10).map(token).collect::<Vec<_>>());
    list.purge(0);
    let mut seen = Vec::new();
    let mut cursor = 0;
    loop {
        let page = list.page(cursor, 3);
        assert!(page.entries.len() <= 3);
        assert!(page.cursor > cursor || !page.more, "the cursor moves forward");
        seen.extend(page.entries.iter().map(|e| e.seq));
        cursor = page.cursor;
        if !page.more {
            break;
        }
        assert_eq!(page.cursor, page.entries.last().unwrap().seq);
    }
    assert_eq!(seen, (1..=10).collect::<Vec<_>>());
    assert_eq!(cursor, 10);
    let past = list.page(10, 3);
    assert_eq!((past.entries.len(), past.cursor, past.more), (0, 10, false));
}

#[test]
fn a_last_page_ends_at_the_watermark_past_purged_entries() {
    let list = RevocationList::new();
    list.load(&[token(5), token(9)], 12);
    let page = list.page(0, 2);
    assert_eq!((page.entries.iter().map(|e| e.seq).collect::<Vec<_>>(), page.cursor, page.more), (vec![5, 9], 12, false));
    let full = list.page(0, 1);
    assert_eq!((full.cursor, full.more), (5, true));
}

#[test]
fn appends_move_the_watermark_and_purges_and_fills_count_as_rewrites() {
    let list = RevocationList::followed();
    list.follow(&[token(1), token(3)]);
    let start = list.version();
    list.follow(&[token(4)]);
    assert_eq!(list.version(), Version { watermark: 4, rewrites: start.rewrites });
    // A snapshot after a reconnect fills in 2, below the watermark.
    list.load(&[token(1), token(2), token(3), token(4)], 4);
    assert_eq!(list.version().rewrites, start.rewrites + 1);
    let expiring = RevocationEntry { seq: 5, covers: Covers::Token { jti: "short".into() }, expires_at: 10 };
    list.follow(&[expiring]);
    list.purge(11);
    assert_eq!(list.version().rewrites, start.rewrites + 2);
    list.purge(11);
    assert_eq!(list.version().rewrites, start.rewrites + 2, "a purge that removes nothing changes nothing");
}

#[test]
fn a_followed_mirror_goes_stale_without_news() {
    let list = RevocationList::followed();
    assert!(!list.is_fresh(10_000, Duration::from_secs(5)));
    list.mark_synced(10_000);
    assert!(list.is_fresh(14_000, Duration::from_secs(5)));
    assert!(!list.is_fresh(15_001, Duration::from_secs(5)));
    assert!(RevocationList::new().is_fresh(0, Duration::ZERO));
}
