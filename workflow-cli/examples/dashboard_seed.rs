//! Fills a database with executions in many states and keeps running them,
//! for trying the CLI and the dashboard (and for the dashboard's browser
//! test):
//!
//! ```text
//! cargo run -p replayflow-cli --example dashboard_seed -- demo.db &
//! cargo run -p replayflow-cli -- --db demo.db serve
//! ```
//!
//! It prints `ready` once every execution has reached its state, then runs
//! as the worker of the file (so cancel, resume and restart requests made
//! from the CLI or the dashboard are applied) until Ctrl-C or SIGTERM.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use replayflow::{
    AnyError, Context, ExecutionStatus, Runtime, StepContext, permanent, step, workflow,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    sku: String,
    quantity: u32,
    amount_cents: u64,
    card: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Receipt {
    reservation: String,
    payment: String,
    tracking: String,
}

fn attempt() -> u32 {
    StepContext::current().map_or(1, |s| s.attempt())
}

async fn work(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[step]
async fn validate_order(order: &Order) -> Result<(), AnyError> {
    work(150).await;
    if order.quantity == 0 {
        return Err(permanent(AnyError::msg("an order needs at least one item")));
    }
    Ok(())
}

#[step(max_attempts = 4, backoff = "200ms", exponential)]
async fn check_inventory(order: &Order) -> Result<String, AnyError> {
    work(250).await;
    if attempt() < 3 {
        return Err(AnyError::msg("inventory service unavailable (503)"));
    }
    Ok(format!("reserved {} x {}", order.quantity, order.sku))
}

#[step(max_attempts = 3, backoff = "150ms")]
async fn charge_payment(order: &Order) -> Result<String, AnyError> {
    work(300).await;
    if order.card == "declined" {
        return Err(AnyError::msg(
            "card declined by issuer (insufficient funds)",
        ));
    }
    let key = StepContext::current()
        .map(|s| s.idempotency_key())
        .unwrap_or_default();
    Ok(format!("charged {} cents ({key})", order.amount_cents))
}

#[step]
async fn ship(order: &Order) -> Result<String, AnyError> {
    if order.sku == "piano" {
        // Freight takes a while: this one stays running.
        work(3_600_000).await;
    }
    work(200).await;
    Ok(format!("1Z999AA1{:08}", order.amount_cents))
}

#[workflow]
async fn order_processing(ctx: Context, order: Order) -> Result<Receipt, AnyError> {
    validate_order(&order).await?;
    let reservation = check_inventory(&order).await?;
    ctx.sleep(Duration::from_millis(800)).await;
    let payment = charge_payment(&order).await?;
    let tracking = ship(&order).await?;
    Ok(Receipt {
        reservation,
        payment,
        tracking,
    })
}

#[step]
async fn render_invoice(customer: &str, amount_cents: u64) -> Result<String, AnyError> {
    work(120).await;
    Ok(format!("invoice for {customer}: {amount_cents} cents"))
}

#[step]
async fn send_email(customer: &str) -> Result<(), AnyError> {
    work(80).await;
    let _ = customer;
    Ok(())
}

#[workflow]
async fn send_invoice(ctx: Context, customer: String, amount_cents: u64) -> Result<(), AnyError> {
    render_invoice(&customer, amount_cents).await?;
    send_email(&customer).await?;
    // Wait for the payment term before the reminder.
    ctx.sleep(Duration::from_secs(7 * 24 * 3600)).await;
    send_email(&customer).await?;
    Ok(())
}

#[step]
async fn aggregate(day: &str) -> Result<u64, AnyError> {
    work(100).await;
    let rows: Vec<u64> = Vec::new();
    if day.ends_with("-01") {
        // A bug: the first of the month has no rows yet.
        return Ok(rows[0]);
    }
    Ok(42)
}

#[workflow(restart_delay = "1h")]
async fn nightly_report(_ctx: Context, day: String) -> Result<u64, AnyError> {
    aggregate(&day).await
}

#[step(max_attempts = 6, backoff = "1m")]
async fn fetch_stock(warehouse: &str) -> Result<u32, AnyError> {
    work(120).await;
    Err(AnyError::msg(format!(
        "warehouse {warehouse}: connection refused"
    )))
}

#[workflow]
async fn sync_inventory(_ctx: Context, warehouse: String) -> Result<u32, AnyError> {
    fetch_stock(&warehouse).await
}

/// The supplier's feed is down until the seed restarts the failed import.
static FEED_DOWN: AtomicBool = AtomicBool::new(true);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Feed {
    rows: u32,
    /// A version above 2^53: JavaScript's numbers cannot hold it exactly.
    version: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Import {
    rows: u32,
    /// 2^53 + 1, the first integer a JavaScript number cannot hold.
    checksum: u64,
}

#[step(max_attempts = 2, backoff = "100ms")]
async fn fetch_feed(supplier: &str, since: u64) -> Result<Feed, AnyError> {
    work(100).await;
    if FEED_DOWN.load(Ordering::SeqCst) {
        return Err(AnyError::msg(format!(
            "supplier {supplier}: feed timed out after 30 s"
        )));
    }
    let _ = since;
    Ok(Feed {
        rows: 1_200,
        version: u64::MAX,
    })
}

#[workflow]
async fn import_catalog(_ctx: Context, supplier: String, since: u64) -> Result<Import, AnyError> {
    let feed = fetch_feed(&supplier, since).await?;
    Ok(Import {
        rows: feed.rows,
        checksum: (1 << 53) + 1,
    })
}

fn order(sku: &str, quantity: u32, amount_cents: u64, card: &str) -> Order {
    Order {
        sku: sku.into(),
        quantity,
        amount_cents,
        card: card.into(),
    }
}

async fn wait_for(rt: &Runtime, id: &str, wanted: &[ExecutionStatus]) -> Result<(), String> {
    for _ in 0..600 {
        let status = rt.status(id).await.map_err(|e| e.to_string())?.status;
        if wanted.contains(&status) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("`{id}` did not reach {wanted:?} within 60 s"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: dashboard_seed DATABASE | dashboard_seed postgres://URL SCHEMA")?;
    // The report's panic is expected: keep the terminal quiet (the runtime
    // records the message and location through its own hook).
    std::panic::set_hook(Box::new(|_| {}));
    let rt = if path.starts_with("postgres://") || path.starts_with("postgresql://") {
        let schema = std::env::args().nth(2).ok_or("a schema after the URL")?;
        Runtime::builder()
            .postgres(&path)
            .schema(schema)
            .open()
            .await?
    } else {
        Runtime::builder().path(&path).open().await?
    };

    use ExecutionStatus::*;
    let orders = [
        ("order-1001", order("book-42", 2, 4_200, "ok")),
        ("order-1002", order("lamp-7", 1, 3_999, "ok")),
        ("order-1003", order("desk-3", 1, 24_900, "ok")),
        ("order-1004", order("mug-11", 4, 2_400, "declined")),
        ("order-1005", order("chair-5", 2, 15_800, "ok")),
        ("order-1006", order("piano", 1, 499_000, "ok")),
        ("order-1007", order("pen-1", 0, 150, "ok")),
    ];
    for (id, o) in &orders {
        order_processing::start(&rt, *id, o.clone()).await?;
    }
    for (id, customer, amount) in [
        ("invoice-2001", "ACME Corp", 120_000u64),
        ("invoice-2002", "Globex", 56_000),
        ("invoice-2003", "Initech", 9_900),
        // Markup in user data must show as text.
        ("invoice-2004", "<img src=x onerror=alert(1)> & Sons", 1_000),
    ] {
        send_invoice::start(&rt, id, customer.to_owned(), amount).await?;
    }
    nightly_report::start(&rt, "report-2025-11-01", "2025-11-01".to_owned()).await?;
    nightly_report::start(&rt, "report-2025-11-02", "2025-11-02".to_owned()).await?;
    sync_inventory::start(&rt, "sync-eu-west", "eu-west".to_owned()).await?;
    // Fails (the feed is down), then completes once restarted: its first
    // run's entry stays, set aside. Its numbers are beyond 2^53.
    import_catalog::start(&rt, "import-3001", "nordic-books".to_owned(), (1 << 53) + 3).await?;

    for id in [
        "order-1001",
        "order-1002",
        "order-1003",
        "order-1005",
        "report-2025-11-02",
    ] {
        wait_for(&rt, id, &[Completed]).await?;
    }
    wait_for(&rt, "order-1004", &[Failed]).await?;
    wait_for(&rt, "order-1007", &[Failed]).await?;
    wait_for(&rt, "report-2025-11-01", &[Panicked]).await?;
    wait_for(&rt, "import-3001", &[Failed]).await?;
    FEED_DOWN.store(false, Ordering::SeqCst);
    rt.restart("import-3001").await?;
    wait_for(&rt, "import-3001", &[Completed]).await?;
    for id in [
        "invoice-2001",
        "invoice-2002",
        "invoice-2003",
        "invoice-2004",
    ] {
        wait_for(&rt, id, &[Sleeping]).await?;
    }
    rt.cancel("invoice-2003").await?;
    wait_for(&rt, "invoice-2003", &[Cancelled]).await?;
    wait_for(&rt, "sync-eu-west", &[Sleeping]).await?;
    // The piano is being shipped: its last step runs for an hour.
    for _ in 0..600 {
        let info = rt.status("order-1006").await?;
        if info.steps.len() == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    println!("ready {path}");
    wait_for_signal().await;
    rt.shutdown().await?;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
