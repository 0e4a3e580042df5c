#[derive(serde::Serialize, serde::Deserialize)]
#[replayflow::renamed_from]
struct Quote {
    price: u32,
}

fn main() {}
