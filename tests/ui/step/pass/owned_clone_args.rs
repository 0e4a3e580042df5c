// Owned arguments that are `Clone` are cloned for each attempt; `mut` bindings stay.
use std::sync::Arc;
use replayflow::step;

#[derive(Clone)]
struct Config {
    retries: u32,
}

#[step]
async fn build(
    mut name: String,
    tags: Vec<String>,
    config: Config,
    shared: Arc<u32>,
) -> Result<String, String> {
    name.push('!');
    Ok(format!("{name} {} {} {shared}", tags.len(), config.retries))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let out = build(
        "hi".to_owned(),
        vec!["a".to_owned()],
        Config { retries: 3 },
        Arc::new(9),
    )
    .await
    .unwrap();
    assert_eq!(out, "hi! 1 3 9");
}
