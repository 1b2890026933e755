use cache_core::cached;

fn one_arg(id: &u64) -> String {
    id.to_string()
}

fn wrong_type(id: &String, flag: &bool) -> String {
    format!("{id}{flag}")
}

struct NotDisplay;

fn not_display(_id: &u64, _flag: &bool) -> NotDisplay {
    NotDisplay
}

#[cached(key_builder = one_arg)]
async fn too_many(id: u64, flag: bool) -> u64 {
    id + flag as u64
}

#[cached(key_builder = wrong_type)]
async fn mismatched(id: u64, flag: bool) -> u64 {
    id + flag as u64
}

#[cached(key_builder = not_display)]
async fn output(id: u64, flag: bool) -> u64 {
    id + flag as u64
}

#[cached(key_builder = "one_arg")]
async fn string(id: u64) -> u64 {
    id
}

fn main() {}
