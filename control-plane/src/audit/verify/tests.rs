use ed25519_dalek::SigningKey;
use modelgate_proto::v1 as pb;

use super::*;
use crate::audit::record::entry_from_record;
use crate::clock::Timestamp;

fn key() -> SigningKey {
    SigningKey::from_bytes(&[3; 32])
}

fn trusted() -> Vec<[u8; 32]> {
    vec![key().verifying_key().to_bytes()]
}

/// A log as a store would hold it.
#[derive(Clone)]
struct Log {
    rows: Vec<ChainRow>,
    checkpoints: Vec<Checkpoint>,
}

fn record(i: u64) -> pb::UsageRecord {
    pb::UsageRecord {
        request_id: format!("req-{i}"),
        timestamp_ms: 1_700_000_000_000 + i as i64,
        key_id: "abcdefghijkl".into(),
        team_id: "team_x".into(),
        model_requested: "llama3".into(),
        tokens_in: i,
        spend: 0.5,
        status: pb::RequestStatus::Success.into(),
        ..Default::default()
    }
}

/// Records 1..=n, checkpoints on the given positions (policy: every 10 records).
fn log(n: u64, checkpoint_at: &[u64]) -> Log {
    let mut rows = Vec::new();
    let mut prev = GENESIS;
    for seq in 1..=n {
        let entry = entry_from_record(&record(seq));
        let hash = record_hash(&prev, seq, &entry.encoded);
        rows.push(ChainRow {
            seq,
            prev_hash: Some(prev.to_vec()),
            hash: Some(hash.to_vec()),
            entry,
        });
        prev = hash;
    }
    let checkpoints = checkpoint_at
        .iter()
        .enumerate()
        .map(|(i, &seq)| sign(i as u64 + 1, &rows[seq as usize - 1]))
        .collect();
    Log { rows, checkpoints }
}

fn sign(number: u64, row: &ChainRow) -> Checkpoint {
    let hash: Hash = row.hash.clone().unwrap().try_into().unwrap();
    Checkpoint::sign(
        &key(),
        number,
        ChainPosition { seq: row.seq, hash },
        Timestamp::from_millis(1),
        10,
    )
}

impl Log {
    fn head(&self) -> ChainPosition {
        self.rows
            .last()
            .map_or(ChainPosition::EMPTY, |r| ChainPosition {
                seq: r.seq,
                hash: r.hash.clone().unwrap().try_into().unwrap(),
            })
    }

    /// Feeds the verifier as a store does: merged by position, a record before a checkpoint.
    fn verify_with(&self, witness: Option<&Checkpoint>) -> Result<VerifyReport, Failure> {
        let keys = trusted();
        let mut v = Verifier::new(&keys, witness);
        let (mut r, mut c) = (0, 0);
        while r < self.rows.len() || c < self.checkpoints.len() {
            let record_first = match (self.rows.get(r), self.checkpoints.get(c)) {
                (Some(row), Some(cp)) => row.seq <= cp.seq,
                (Some(_), None) => true,
                _ => false,
            };
            if record_first {
                v.record(&self.rows[r])?;
                r += 1;
            } else {
                v.checkpoint(self.checkpoints[c].clone())?;
                c += 1;
            }
        }
        v.finish(self.head(), 0)
    }

    fn verify(&self) -> Result<VerifyReport, Failure> {
        self.verify_with(None)
    }

    /// Replaces records from position `from` on with forged ones, correctly chained.
    fn rechain_from(&mut self, from: u64) {
        let mut prev: Hash = self.rows[from as usize - 1]
            .prev_hash
            .clone()
            .unwrap()
            .try_into()
            .unwrap();
        for row in &mut self.rows[from as usize - 1..] {
            let mut forged = record(row.seq);
            forged.key_id = "forgedforged".into();
            row.entry = entry_from_record(&forged);
            let hash = record_hash(&prev, row.seq, &row.entry.encoded);
            row.prev_hash = Some(prev.to_vec());
            row.hash = Some(hash.to_vec());
            prev = hash;
        }
    }
}

fn failed_at(result: Result<VerifyReport, Failure>) -> Failure {
    result.expect_err("verification must fail")
}

#[test]
fn an_untouched_log_verifies() {
    let l = log(25, &[10, 20]);
    let r = l.verify().unwrap();
    assert_eq!(r.records, 25);
    assert_eq!(r.checkpoints, 2);
    assert_eq!((r.first_seq, r.last_seq), (Some(1), Some(25)));
    assert_eq!(r.unsigned_records, 5);
    assert_eq!(r.anchor, None);

    let empty = log(0, &[]);
    assert_eq!(empty.verify().unwrap().records, 0);
}

#[test]
fn an_edited_record_or_column_is_named() {
    let mut l = log(25, &[10, 20]);
    l.rows[4].entry.encoded = entry_from_record(&record(99)).encoded;
    let f = failed_at(l.verify());
    assert_eq!(f.seq, Some(5));
    assert!(f.reason.contains("edited"), "{f}");

    let mut l = log(25, &[10, 20]);
    l.rows[6].entry.spend = 0.0;
    let f = failed_at(l.verify());
    assert_eq!(f.seq, Some(7));
    assert!(f.reason.contains("column spend"), "{f}");
}

#[test]
fn an_edit_re_hashed_and_re_chained_contradicts_the_next_checkpoint() {
    let mut l = log(25, &[10, 20]);
    l.rechain_from(12);
    let f = failed_at(l.verify());
    assert_eq!(f.seq, Some(20));
    assert!(f.reason.contains("checkpoint 2"), "{f}");
    assert!(f.reason.contains("records 11..20"), "{f}");

    // Re-hashing only the edited record breaks the link to the next one.
    let mut l = log(25, &[10, 20]);
    let saved = l.rows[12].clone();
    l.rechain_from(12);
    l.rows[12] = saved;
    let f = failed_at(l.verify());
    assert_eq!(f.seq, Some(13));
    assert!(f.reason.contains("does not follow record 12"), "{f}");
}

#[test]
fn deleted_swapped_and_inserted_records_are_named() {
    let mut l = log(25, &[10, 20]);
    l.rows.remove(6);
    let f = failed_at(l.verify());
    assert_eq!(f.seq, Some(7));
    assert!(f.reason.contains("record 7 is missing"), "{f}");

    // Swapping the contents of two positions.
    let mut l = log(25, &[10, 20]);
    let (a, b) = (l.rows[3].clone(), l.rows[4].clone());
    l.rows[3] = ChainRow { seq: 4, ..b };
    l.rows[4] = ChainRow { seq: 5, ..a };
    let f = failed_at(l.verify());
    assert_eq!(f.seq, Some(4));

    // An inserted record shifts every later position: the inserted one cannot be chained
    // without re-chaining the rest, which the checkpoint contradicts.
    let mut l = log(25, &[10, 20]);
    l.rechain_from(5);
    let f = failed_at(l.verify());
    assert_eq!(f.seq, Some(10));
}

#[test]
fn tail_truncation_then_forged_rows_is_caught() {
    // The checkpoint covering a truncated record contradicts the forged one.
    let mut l = log(25, &[10, 20]);
    l.rows.truncate(15);
    let f = failed_at(l.verify());
    assert_eq!(f.checkpoint, Some(2));
    assert!(f.reason.contains("tail truncated"), "{f}");
    let mut l = log(25, &[10, 20]);
    l.rechain_from(16);
    let f = failed_at(l.verify());
    assert_eq!(f.seq, Some(20));

    // Deleting that checkpoint too leaves more unsigned records than the policy allows...
    let mut l = log(25, &[10, 20]);
    l.checkpoints.pop();
    l.rechain_from(16);
    let f = failed_at(l.verify());
    assert_eq!(f.checkpoint, Some(2));
    assert!(f.reason.contains("every 10 records"), "{f}");

    // ...and within the policy, the witness of the newest signed checkpoint catches it.
    let mut l = log(25, &[10, 20]);
    let witness = l.checkpoints[1].clone();
    l.checkpoints.pop();
    l.rows.truncate(15);
    l.rechain_from(12);
    assert!(
        l.verify().is_ok(),
        "without the witness this looks like a fresh tail"
    );
    let f = failed_at(l.verify_with(Some(&witness)));
    assert_eq!(f.checkpoint, Some(2));
    assert!(f.reason.contains("missing"), "{f}");
}

#[test]
fn checkpoint_gaps_forgeries_and_strangers_are_named() {
    let mut l = log(35, &[10, 20, 30]);
    l.checkpoints.remove(1);
    let f = failed_at(l.verify());
    assert_eq!(f.checkpoint, Some(2));

    let mut l = log(25, &[10, 20]);
    l.checkpoints[0].seq = 11;
    let f = failed_at(l.verify());
    assert_eq!(f.checkpoint, Some(1));
    assert!(f.reason.contains("signature"), "{f}");

    let mut l = log(25, &[10, 20]);
    let stranger = SigningKey::from_bytes(&[4; 32]);
    let c = &l.checkpoints[1];
    l.checkpoints[1] = Checkpoint::sign(&stranger, c.number, c.position(), c.created_at, 10);
    let f = failed_at(l.verify());
    assert_eq!(f.checkpoint, Some(2));
    assert!(f.reason.contains("not trusted"), "{f}");

    let l = log(5, &[]);
    assert!(failed_at(l.verify())
        .reason
        .contains("no signed checkpoint"));
}

#[test]
fn a_pruned_log_is_anchored_on_a_checkpoint() {
    let mut l = log(25, &[5, 10, 20]);
    l.rows.drain(..9);
    l.checkpoints.remove(0);
    // Checkpoint numbering starts above 1 after a prune.
    let r = l.verify().unwrap();
    assert_eq!(r.first_seq, Some(10));
    assert_eq!(r.anchor, Some(2));

    let mut l = log(25, &[5, 10, 20]);
    l.rows.drain(..9);
    l.checkpoints.remove(1);
    let f = failed_at(l.verify());
    assert_eq!(f.seq, Some(10));
    assert!(f.reason.contains("without `audit prune`"), "{f}");

    // Deleting every record is not a prune: the anchor record always stays.
    let mut l = log(25, &[10, 20]);
    l.rows.clear();
    assert!(failed_at(l.verify_with(None)).reason.contains("no records"));
}

#[test]
fn a_replaced_witnessed_checkpoint_is_named() {
    let l = log(25, &[10, 20]);
    let mut witness = l.checkpoints[1].clone();
    assert!(l.verify_with(Some(&witness)).unwrap().witness_checked);
    witness.created_at = Timestamp::from_millis(2);
    let f = failed_at(l.verify_with(Some(&witness)));
    assert_eq!(f.checkpoint, Some(2));
    assert!(f.reason.contains("replaced"), "{f}");
}
