// A `pub` workflow in one module, started from another; its methods take its visibility.
mod orders {
    use replayflow::{Context, step, workflow};

    #[step]
    async fn reserve(qty: u32) -> Result<u32, String> {
        Ok(qty)
    }

    /// Reserves stock for an order.
    #[workflow]
    pub async fn reserve_stock(_ctx: Context, qty: u32) -> Result<u32, String> {
        reserve(qty).await
    }

    #[workflow]
    pub(crate) async fn internal(_ctx: Context) -> Result<(), String> {
        Ok(())
    }
}

mod api {
    use replayflow::{Handle, Runtime};

    pub async fn submit(rt: &Runtime) -> Handle<crate::orders::reserve_stock> {
        crate::orders::reserve_stock::start(rt, "reserve-1", 3)
            .await
            .unwrap()
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let rt = replayflow::Runtime::in_memory().await.unwrap();
    let handle = api::submit(&rt).await;
    assert_eq!(handle.result().await.unwrap(), 3);
    orders::internal::start(&rt, "internal-1")
        .await
        .unwrap()
        .result()
        .await
        .unwrap();
}
