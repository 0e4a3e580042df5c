//! The kill -9 torture test: 100 concurrent workflows mixing steps, retries,
//! inline steps and sleeps; a worker process SIGKILLed at seeded random
//! moments 20 times, restarted after each kill. Every workflow must complete
//! with the right output, and no step body may begin after its completion was
//! committed: a completed step ran in no generation after the one whose value
//! the journal kept. Replay a run with `TORTURE_SEED=<seed>`.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const WORKFLOWS: u64 = 100;
const KILLS: u32 = 20;

/// A small deterministic generator (xorshift), so a seed replays a run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn worker(db: &str, ledger: &str, generation: u32) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_crash-worker"));
    cmd.args([
        "torture",
        db,
        ledger,
        &generation.to_string(),
        &WORKFLOWS.to_string(),
    ]);
    cmd
}

#[test]
fn workflows_survive_repeated_sigkills() {
    let seed = std::env::var("TORTURE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    eprintln!("torture seed: {seed} (replay with TORTURE_SEED={seed})");
    let mut rng = Rng(seed);

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("torture.db");
    let ledger = dir.path().join("ledger.txt");
    let (db_s, ledger_s) = (db.to_str().unwrap(), ledger.to_str().unwrap());

    // Kill live workers until KILLS kills have landed on a running process.
    let mut kills = 0;
    let mut generation = 0;
    while kills < KILLS {
        let mut child = worker(db_s, ledger_s, generation)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        generation += 1;
        let delay = Duration::from_millis(150 + rng.next() % 600);
        let deadline = Instant::now() + delay;
        let mut exited = None;
        while Instant::now() < deadline && exited.is_none() {
            exited = child.try_wait().unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
        match exited {
            Some(status) => panic!(
                "seed {seed}: the worker ended on its own ({status}) after {kills} kills; the workload is too short"
            ),
            None => {
                child.kill().unwrap();
                child.wait().unwrap();
                kills += 1;
            }
        }
    }

    let out = worker(db_s, ledger_s, generation).output().unwrap();
    assert!(
        out.status.success(),
        "seed {seed}: the final run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let outputs: HashMap<String, u64> = stdout
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(id, v)| (id.to_owned(), v.parse().unwrap()))
        .collect();
    assert_eq!(outputs.len() as u64, WORKFLOWS, "seed {seed}");
    for i in 0..WORKFLOWS {
        let expected = 1000 * i + 45 + i % 3;
        assert_eq!(
            outputs[&format!("t-{i}")],
            expected,
            "seed {seed}: wrong output of t-{i}"
        );
    }

    // Which generations began each step body, from the ledger.
    let ledger_text = std::fs::read_to_string(&ledger).unwrap();
    let mut begun: HashMap<String, Vec<u32>> = HashMap::new();
    for line in ledger_text.lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        if let ["begin", key, generation, _attempt, _at] = parts.as_slice() {
            begun
                .entry((*key).to_owned())
                .or_default()
                .push(generation.parse().unwrap());
        }
    }

    // Which generation's value the journal kept for each step.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mut stmt = conn
        .prepare("SELECT execution_id, name, occurrence, output FROM step_executions WHERE kind = 'step' AND name = 'work' AND status = 'completed'")
        .unwrap();
    let committed: Vec<(String, u32)> = stmt
        .query_map([], |r| {
            let key = format!(
                "{}/{}#{}",
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, u32>(2)?
            );
            let output: Vec<u8> = r.get(3)?;
            let value: serde_json::Value = serde_json::from_slice(&output).unwrap();
            Ok((key, value["generation"].as_u64().unwrap() as u32))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(committed.len() as u64, WORKFLOWS * 10, "seed {seed}");
    let mut repeated = 0;
    for (key, kept) in &committed {
        let generations = begun
            .get(key)
            .unwrap_or_else(|| panic!("seed {seed}: {key} never began"));
        let last = generations.iter().copied().max().unwrap_or(0);
        assert!(
            last <= *kept,
            "seed {seed}: {key} began in generation {last} after its result from generation {kept} was committed"
        );
        repeated += generations.len() - 1;
    }
    eprintln!(
        "torture: {WORKFLOWS} workflows, {kills} kills, {} step bodies begun for {} steps ({repeated} repeats: retries and in-flight steps)",
        begun.values().map(Vec::len).sum::<usize>(),
        committed.len()
    );
}
