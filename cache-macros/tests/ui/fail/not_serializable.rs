use cache_core::cached;

pub struct Report {
    pub lines: Vec<String>,
}

#[cached(ttl = 60)]
async fn report(id: u64) -> Option<Report> {
    Some(Report { lines: vec![id.to_string()] })
}

fn main() {}
