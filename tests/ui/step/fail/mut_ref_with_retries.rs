use replayflow::step;

#[step]
async fn append(log: &mut Vec<String>, line: String) -> Result<usize, String> {
    log.push(line);
    Ok(log.len())
}

fn main() {}
