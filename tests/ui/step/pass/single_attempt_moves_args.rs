// With `max_attempts = 1` the arguments move into the only attempt: no `Clone` needed,
// and `&mut` is fine.
use replayflow::{Context, Runtime, step, workflow};

struct Connection {
    sent: Vec<String>,
}

#[step(max_attempts = 1)]
async fn send(conn: Connection, message: String, log: &mut Vec<String>) -> Result<usize, String> {
    log.push(message.clone());
    let mut conn = conn;
    conn.sent.push(message);
    Ok(conn.sent.len())
}

#[workflow]
async fn deliver(_ctx: Context, message: String) -> Result<usize, String> {
    let mut log = Vec::new();
    let n = send(Connection { sent: Vec::new() }, message, &mut log).await?;
    Ok(n + log.len())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut log = Vec::new();
    let n = send(
        Connection { sent: Vec::new() },
        "plain".to_owned(),
        &mut log,
    )
    .await
    .unwrap();
    assert_eq!((n, log.len()), (1, 1));

    let rt = Runtime::in_memory().await.unwrap();
    let handle = deliver::start(&rt, "deliver-1", "hello".to_owned())
        .await
        .unwrap();
    assert_eq!(handle.result().await.unwrap(), 2);
}
