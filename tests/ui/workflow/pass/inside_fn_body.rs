// A workflow and its step defined inside a function body, next to the types they use.
use replayflow::{Context, Runtime, step, workflow};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Greeting {
        name: String,
    }

    #[step]
    async fn shout(name: &str) -> Result<String, String> {
        Ok(name.to_uppercase())
    }

    #[workflow]
    async fn greet(_ctx: Context, greeting: Greeting) -> Result<String, String> {
        let loud = shout(&greeting.name).await?;
        Ok(format!("hello, {loud}"))
    }

    let rt = Runtime::in_memory().await.unwrap();
    let greeting = Greeting {
        name: "ada".to_owned(),
    };
    let handle = greet::start(&rt, "greet-1", greeting).await.unwrap();
    assert_eq!(handle.result().await.unwrap(), "hello, ADA");
}
