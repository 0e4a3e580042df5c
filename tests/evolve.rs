//! Two builds of the same workflows (`tests/support/evolve/v1.rs` and
//! `v2.rs`): executions started on the old build and left asleep, then the
//! new build's pre-deploy check reports exactly those a change would park,
//! and the new build runs the others to completion and parks those with
//! the words the check gave.
//!
//! The cases: a step inserted before the point the executions sleep at, and
//! one after it; a step removed, renamed, two reordered; a step's output
//! type changed compatibly (a new optional field) and incompatibly (a
//! number became text); an argument's type changed; a change behind
//! `ctx.patched`; a workflow no longer in the build.

mod support;

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;
use support::TempDb;

fn run(bin: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(bin)
        .args(args)
        .output()
        .expect("run the build");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked"),
        "{bin} {args:?} panicked:\n{stderr}"
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).expect("utf-8 output"),
    )
}

const V1: &str = env!("CARGO_BIN_EXE_evolve-v1");
const V2: &str = env!("CARGO_BIN_EXE_evolve-v2");

#[test]
fn the_check_reports_exactly_what_the_new_build_parks_and_with_the_same_words() {
    let db = TempDb::new();
    let path = db.path();
    let path = path.to_str().unwrap();
    assert_eq!(run(V1, &["start", path]).0, 0);

    // The old build's own check passes.
    let (code, text) = run(V1, &["check", "--db", path]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.starts_with("checked 10 unfinished executions: every one runs"),
        "{text}"
    );

    let (code, json) = run(V2, &["check", "--db", path, "--json"]);
    assert_eq!(code, 1, "{json}");
    let report: Value = serde_json::from_str(&json).expect("a JSON report");
    assert_eq!(report["checked"], 10);
    let found: BTreeMap<String, (String, String)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap().to_owned(),
                (
                    f["problem"].as_str().unwrap().to_owned(),
                    f["message"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect();
    let problems: Vec<(&str, &str)> = found
        .iter()
        .map(|(id, (problem, _))| (id.as_str(), problem.as_str()))
        .collect();
    assert_eq!(
        problems,
        [
            ("argument_changed-1", "undecodable"),
            ("inserted_before-1", "nondeterminism"),
            ("output_incompatible-1", "undecodable"),
            ("removed-1", "nondeterminism"),
            ("renamed-1", "nondeterminism"),
            ("reordered-1", "nondeterminism"),
            ("retired-1", "unknown_workflow"),
        ],
        "{json}"
    );
    // The messages name what changed.
    let message = |id: &str| found[id].1.as_str();
    assert!(
        message("inserted_before-1")
            .contains("recorded sleep `sleep#0` but the workflow now calls step `x#0`"),
        "{}",
        message("inserted_before-1")
    );
    assert!(message("renamed-1").contains("`b#0`") && message("renamed-1").contains("`b2#0`"));
    assert!(
        message("reordered-1")
            .contains("recorded step `a#0` but the workflow now calls step `b#0`"),
        "{}",
        message("reordered-1")
    );
    assert!(
        message("removed-1").contains("recorded step `b#0` but the workflow now calls sleep"),
        "{}",
        message("removed-1")
    );
    assert!(
        message("output_incompatible-1").contains(
            "was journaled as `evolve_v1::Quote` and is now read as `evolve_v2::TextQuote`"
        ),
        "{}",
        message("output_incompatible-1")
    );
    assert!(
        message("argument_changed-1").contains(
            "the input of workflow `argument_changed` was journaled as `(u32,)` and is now read as `(alloc::string::String,)`"
        ),
        "{}",
        message("argument_changed-1")
    );
    assert!(message("retired-1").contains("`retired` is not registered"));
    // A step call's mismatch names the line of the workflow that made it
    // (the helper that calls `ctx.step`, here).
    assert!(
        message("renamed-1").contains("(at tests/support/evolve/harness.rs:"),
        "{}",
        message("renamed-1")
    );

    // The human report lists the same.
    let (code, text) = run(V2, &["check", "--db", path]);
    assert_eq!(code, 1);
    assert!(
        text.starts_with("checked 10 unfinished executions: 7 would not run on this build"),
        "{text}"
    );

    // The new build runs: the others complete, those park with the check's words.
    let (code, lines) = run(V2, &["run", path]);
    assert_eq!(code, 0);
    let (results, lines): (Vec<&str>, Vec<&str>) =
        lines.lines().partition(|l| l.starts_with("{\"error\""));
    // A result of the old build read as the new build's type: refused,
    // naming both types.
    let read: Value = serde_json::from_str(results[0]).unwrap();
    assert!(
        read["error"]
            .as_str()
            .unwrap()
            .contains("the output of execution `finished-1` as `u64`: it was written as `u32`"),
        "{read}"
    );
    let ran: BTreeMap<String, Value> = lines
        .into_iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("a JSON line");
            (v["id"].as_str().unwrap().to_owned(), v)
        })
        .collect();
    for (id, v) in &ran {
        let status = v["status"].as_str().unwrap();
        match found.get(id) {
            Some((problem, _)) if problem == "unknown_workflow" => {
                assert_eq!(status, "sleeping", "{id} was touched: {v}")
            }
            Some((_, message)) => {
                assert_eq!(status, "paused", "{id}: {v}");
                assert_eq!(v["message"].as_str(), Some(message.as_str()), "{id}");
            }
            None => assert_eq!(status, "completed", "{id}: {v}"),
        }
    }
    assert_eq!(ran.len(), 12);
    assert_eq!(ran["inserted_after-1"]["output"], "axb");
    assert_eq!(ran["output_compatible-1"]["output"], 12);
    // Passed the change on the old build: the old step; started on the new: the new.
    assert_eq!(ran["patched-1"]["output"], "abc");
    assert_eq!(ran["patched-2"]["output"], "ab2c");
}
