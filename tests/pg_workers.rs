//! Kill -9 across workers sharing one PostgreSQL database: three worker
//! processes run 60 workflows (steps, retries, inline steps, sleeps); a
//! worker is SIGKILLed at seeded random moments and a new one started in its
//! place. Every workflow must complete with the right output, its steps'
//! values taken over by the survivors, and no step body may begin after its
//! completion was committed (a step is re-run only while it was in flight
//! on a killed worker). Replay a run with `TORTURE_SEED=<seed>`.

mod support;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::pg::PgDb;

const WORKFLOWS: u64 = 60;
const WORKERS: usize = 3;
const KILLS: u32 = 4;

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn worker(db: &PgDb, ledger: &str, generation: u32) -> Child {
    Command::new(env!("CARGO_BIN_EXE_crash-worker"))
        .args([
            "pg-torture",
            &db.url,
            &db.schema,
            ledger,
            &generation.to_string(),
            &WORKFLOWS.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn a worker")
}

#[test]
fn workflows_survive_sigkills_of_workers_sharing_postgres() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let Some(db) = rt.block_on(PgDb::new("workers")) else {
        return;
    };
    let seed = std::env::var("TORTURE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    eprintln!("pg torture seed: {seed} (replay with TORTURE_SEED={seed})");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.txt");
    let ledger_s = ledger.to_str().unwrap();

    let mut generation = 0;
    let mut live: Vec<(Child, u32)> = Vec::new();
    for _ in 0..WORKERS {
        live.push((worker(&db, ledger_s, generation), generation));
        generation += 1;
    }
    // When each killed worker died (wall clock, ms).
    let mut killed_at: HashMap<u32, i64> = HashMap::new();
    let mut kills = 0;
    while kills < KILLS {
        std::thread::sleep(Duration::from_millis(1_000 + rng.next() % 2_000));
        let victim = (rng.next() % live.len() as u64) as usize;
        let (mut child, victim_generation) = live.swap_remove(victim);
        if child.try_wait().unwrap().is_some() {
            panic!(
                "seed {seed}: a worker ended on its own after {kills} kills; the workload is too short"
            );
        }
        child.kill().unwrap();
        child.wait().unwrap();
        killed_at.insert(victim_generation, wall_ms());
        kills += 1;
        live.push((worker(&db, ledger_s, generation), generation));
        generation += 1;
    }

    // The survivors and the replacements finish every workflow.
    let deadline = Instant::now() + Duration::from_secs(240);
    for (child, _) in live {
        let mut child = child;
        while child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "seed {seed}: a worker did not finish within 240 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "seed {seed}: a worker failed: {}",
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
            assert_eq!(outputs[&format!("t-{i}")], expected, "seed {seed}: t-{i}");
        }
    }

    // When each step body began (wall clock of this machine, as the journal's).
    let ledger_text = std::fs::read_to_string(&ledger).unwrap();
    let mut begun: HashMap<String, Vec<i64>> = HashMap::new();
    // Each body's run: (execution, worker generation, begin, end); a body
    // of a killed worker that never ended ends at the kill.
    let mut bodies: HashMap<(String, u32, String), (i64, Option<i64>)> = HashMap::new();
    for line in ledger_text.lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts.as_slice() {
            ["begin", key, generation, attempt, at] => {
                let at: i64 = at.parse().unwrap();
                begun.entry((*key).to_owned()).or_default().push(at);
                bodies.insert(
                    (
                        (*key).to_owned(),
                        generation.parse().unwrap(),
                        (*attempt).to_owned(),
                    ),
                    (at, None),
                );
            }
            ["end", key, generation, attempt, at] => {
                let run = (
                    (*key).to_owned(),
                    generation.parse().unwrap(),
                    (*attempt).to_owned(),
                );
                if let Some(body) = bodies.get_mut(&run) {
                    body.1 = Some(at.parse().unwrap());
                }
            }
            _ => {}
        }
    }
    // Never two owners: on one execution, the step bodies of two workers
    // never overlap (a killed worker's body ends at its kill).
    let mut by_execution: HashMap<String, Vec<(i64, i64, u32)>> = HashMap::new();
    for ((key, generation, _), (begin, end)) in &bodies {
        let end = end
            .or(killed_at.get(generation).copied())
            .unwrap_or_else(|| {
                panic!("seed {seed}: {key} began in live worker {generation} and never ended")
            });
        let execution = key.split('/').next().unwrap_or_default().to_owned();
        by_execution
            .entry(execution)
            .or_default()
            .push((*begin, end, *generation));
    }
    for (execution, runs) in &mut by_execution {
        runs.sort();
        for pair in runs.windows(2) {
            let ((_, end, a), (begin, _, b)) = (pair[0], pair[1]);
            assert!(
                a == b || begin >= end,
                "seed {seed}: on {execution}, worker {b} began a step at {begin} while worker {a} ran one until {end}"
            );
        }
    }
    let committed: Vec<(String, i64)> = rt.block_on(async {
        let client = db.client().await;
        client
            .query(
                "SELECT execution_id, name, occurrence, completed_at FROM step_executions
                 WHERE kind = 'step' AND name = 'work' AND status = 'completed'",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| {
                (
                    format!(
                        "{}/{}#{}",
                        r.get::<_, String>(0),
                        r.get::<_, String>(1),
                        r.get::<_, i64>(2)
                    ),
                    r.get::<_, i64>(3),
                )
            })
            .collect()
    });
    assert_eq!(committed.len() as u64, WORKFLOWS * 10, "seed {seed}");
    let mut repeated = 0;
    for (key, completed_at) in &committed {
        let starts = begun
            .get(key)
            .unwrap_or_else(|| panic!("seed {seed}: {key} never began"));
        let last = starts.iter().copied().max().unwrap_or(0);
        assert!(
            last <= *completed_at,
            "seed {seed}: {key} began at {last}, after its completion was committed at {completed_at}"
        );
        repeated += starts.len() - 1;
    }
    let dead: i64 = rt.block_on(async {
        let client = db.client().await;
        client
            .query_one(
                "SELECT count(*) FROM workers WHERE dead_at IS NOT NULL",
                &[],
            )
            .await
            .unwrap()
            .get(0)
    });
    assert_eq!(
        dead,
        i64::from(generation),
        "seed {seed}: every worker ended"
    );
    eprintln!(
        "pg torture: {WORKFLOWS} workflows on {WORKERS} workers, {kills} kills, {} step bodies begun for {} steps ({repeated} repeats: retries and in-flight steps)",
        begun.values().map(Vec::len).sum::<usize>(),
        committed.len()
    );
}

/// The same workflow as the worker process's `stall_flow`, whose step here
/// answers at once: this process is the peer that takes it over.
mod peer {
    use replayflow::{AnyError, Context, step, workflow};

    #[step]
    pub async fn stall_step(_ledger: &str) -> Result<String, AnyError> {
        Ok("the peer".to_owned())
    }

    #[workflow]
    pub async fn stall_flow(_ctx: Context, ledger: String) -> Result<String, AnyError> {
        stall_step(&ledger).await
    }
}

/// A worker frozen (SIGSTOP) mid-step for longer than its lease is declared
/// dead; a peer takes the execution over and finishes it. Thawed, the
/// frozen worker's step result is refused by the fence: the journal keeps
/// the peer's, and the worker registers anew under another id.
#[test]
fn a_worker_frozen_past_its_lease_commits_nothing_when_it_thaws() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let Some(db) = rt.block_on(PgDb::new("stall")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.txt");
    let ledger_s = ledger.to_str().unwrap();
    let mut frozen = Command::new(env!("CARGO_BIN_EXE_crash-worker"))
        .args(["pg-stall", &db.url, &db.schema, ledger_s])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&ledger)
        .unwrap_or_default()
        .contains("stall begin")
    {
        assert!(Instant::now() < deadline, "the step never began");
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid = frozen.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let stopped = Instant::now();

    let peer_out = rt.block_on(async {
        let peer = db
            .builder()
            .lease(Duration::from_secs(1))
            .open()
            .await
            .expect("the peer opens");
        let out = support::within(peer.handle::<peer::stall_flow>("stall-1").result())
            .await
            .expect("the peer finishes it");
        peer.shutdown().await.expect("the peer shuts down");
        out
    });
    assert_eq!(peer_out, "the peer");
    // Frozen past the step's three seconds too: thawed, its body ends at
    // once and its result goes to the journal, which must refuse it.
    std::thread::sleep(Duration::from_millis(3_500).saturating_sub(stopped.elapsed()));
    assert!(
        Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .unwrap()
            .success()
    );

    while frozen.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the thawed worker did not finish"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = frozen.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the thawed worker failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // It waited for the result and read the peer's.
    assert!(stdout.starts_with("the peer\n"), "{stdout}");
    let ids: Vec<&str> = stdout
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split(' ')
        .collect();
    assert_eq!(ids.len(), 3, "{stdout}");
    assert_ne!(
        ids[1], ids[2],
        "the thawed worker registered anew: {stdout}"
    );
    assert!(
        std::fs::read_to_string(&ledger)
            .unwrap()
            .contains("stall end"),
        "the frozen step body did finish: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (output, attempts): (Vec<u8>, i64) = rt.block_on(async {
        let client = db.client().await;
        let row = client
            .query_one(
                "SELECT output, attempts FROM step_executions WHERE execution_id = 'stall-1' AND position = 0",
                &[],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    });
    assert_eq!(String::from_utf8_lossy(&output), "\"the peer\"");
    // The peer's run is attempt 2 when the frozen worker had journaled the
    // start of its attempt (a step running past 10 ms does) before the
    // freeze, and attempt 1 when it had not: never a third.
    assert!((1..=2).contains(&attempts), "{attempts} attempts");
}

mod sleepers {
    use std::time::Duration;

    use replayflow::{AnyError, Context, workflow};

    /// The worker process's `pg_sleeper`.
    #[workflow]
    pub async fn pg_sleeper(ctx: Context, i: u32) -> Result<u32, AnyError> {
        ctx.sleep(Duration::from_secs(2)).await;
        Ok(i * 2)
    }
}

/// Sleepers of a worker killed with SIGKILL are woken by another worker
/// once the dead worker's lease has run out; none counts as a recovery (a
/// sleeper was not running).
#[test]
fn sleepers_of_a_killed_worker_are_woken_elsewhere() {
    const SLEEPERS: u32 = 200;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let Some(db) = rt.block_on(PgDb::new("sleepers")) else {
        return;
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_crash-worker"))
        .args(["pg-sleepers", &db.url, &db.schema, &SLEEPERS.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(line.trim(), "sleeping", "the worker suspended its sleepers");
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = Instant::now();
    let took = rt.block_on(async {
        let peer = db
            .builder()
            .lease(Duration::from_secs(1))
            .open()
            .await
            .expect("the peer opens");
        for i in 0..SLEEPERS {
            let out = support::within(
                peer.handle::<sleepers::pg_sleeper>(format!("sleeper-{i}"))
                    .result(),
            )
            .await
            .expect("woken on the peer");
            assert_eq!(out, i * 2);
        }
        let took = killed.elapsed();
        peer.shutdown().await.expect("shutdown");
        took
    });
    let recovered: i64 = rt.block_on(async {
        db.client()
            .await
            .query_one(
                "SELECT count(*) FROM workflow_executions WHERE recovery_attempts > 0",
                &[],
            )
            .await
            .unwrap()
            .get(0)
    });
    assert_eq!(recovered, 0, "a sleeper is not a recovery");
    eprintln!("{SLEEPERS} sleepers of a killed worker completed elsewhere {took:?} after the kill");
}

/// A workflow that kills whichever worker runs it is paused once its
/// recovery budget (2) is spent, whichever workers claimed it: it never
/// takes down the fleet one worker after another.
#[test]
fn a_workflow_that_kills_its_worker_is_paused_after_its_budget() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let Some(db) = rt.block_on(PgDb::new("poison")) else {
        return;
    };
    let mut aborted = 0;
    let mut paused = false;
    for _ in 0..8 {
        let out = Command::new(env!("CARGO_BIN_EXE_crash-worker"))
            .args(["pg-poison", &db.url, &db.schema])
            .output()
            .unwrap();
        if out.status.success() {
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "paused");
            paused = true;
            break;
        }
        assert_eq!(
            out.status.code(),
            None,
            "a worker ended otherwise than by the abort: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        aborted += 1;
    }
    assert!(
        paused,
        "poison-1 was never paused after {aborted} aborted workers"
    );
    assert_eq!(aborted, 3, "the first run and two recoveries");
    let (status, reason): (String, Option<String>) = rt.block_on(async {
        let row = db
            .client()
            .await
            .query_one(
                "SELECT status, error_message FROM workflow_executions WHERE id = 'poison-1'",
                &[],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    });
    assert_eq!(status, "paused");
    assert!(
        reason
            .as_deref()
            .unwrap_or_default()
            .contains("recovery budget 2"),
        "{reason:?}"
    );
}
