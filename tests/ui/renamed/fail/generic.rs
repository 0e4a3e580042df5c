#[derive(serde::Serialize, serde::Deserialize)]
#[replayflow::renamed_from("app::OldPage")]
struct Page<T> {
    items: Vec<T>,
}

fn main() {}
