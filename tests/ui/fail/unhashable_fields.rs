// Every field that cannot cross the wire is reported, in one compilation.
use redux_cluster::Schema;

pub trait Shape {}

#[derive(Schema)]
pub struct Bad {
    ok: u32,
    name: &'static str,
    callback: fn(u32) -> u32,
    shape: Box<dyn Shape>,
    raw: *const u8,
    inside: Vec<Option<&'static [u8]>>,
}

fn main() {}
