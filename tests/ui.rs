//! Compile tests of `#[workflow]`, `#[step]` and `#[renamed_from]`: every valid form compiles (and runs), and
//! each mistake is reported on the offending token with a message worth reading.
//!
//! The determinism lint of `#[workflow]` warns rather than fails, so its cases
//! (`workflow/fail/lint_*.rs`) deny `deprecated`: the warning becomes an error whose text
//! the `.stderr` holds.
//!
//! After changing a message, regenerate the `.stderr` files with
//! `TRYBUILD=overwrite cargo test --test ui` and read the diff.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/step/pass/*.rs");
    cases.pass("tests/ui/workflow/pass/*.rs");
    cases.compile_fail("tests/ui/step/fail/*.rs");
    cases.compile_fail("tests/ui/workflow/fail/*.rs");
    cases.pass("tests/ui/renamed/pass/*.rs");
    cases.compile_fail("tests/ui/renamed/fail/*.rs");
}
