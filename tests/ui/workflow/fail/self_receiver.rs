use replayflow::{Context, workflow};

struct Orders;

impl Orders {
    #[workflow]
    async fn process(self, ctx: Context) -> Result<u64, String> {
        let _ = ctx;
        Ok(1)
    }
}

fn main() {}
