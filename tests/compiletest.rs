//! Compile-time behaviour of the macros: what must build, and what must fail
//! with a clear message at the right span. The expected messages live in
//! `ui/fail/*.stderr`; regenerate them with `TRYBUILD=overwrite` and read
//! every changed line before committing.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("ui/pass/*.rs");
    t.compile_fail("ui/fail/*.rs");
}
