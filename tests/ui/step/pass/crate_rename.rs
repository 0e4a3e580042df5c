// `crate = "..."` points the generated code at a renamed dependency.
extern crate replayflow as my_wf;

use my_wf::step;

#[step(crate = "my_wf", max_attempts = 2)]
async fn double(n: u32) -> Result<u32, String> {
    Ok(n * 2)
}

#[step(crate = "::my_wf")]
async fn triple(n: u32) -> Result<u32, String> {
    Ok(n * 3)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(double(2).await.unwrap(), 4);
    assert_eq!(triple(2).await.unwrap(), 6);
}
