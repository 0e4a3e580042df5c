#[derive(serde::Serialize, serde::Deserialize)]
#[replayflow::renamed_from(app::OldQuote)]
struct Quote {
    price: u32,
}

fn main() {}
