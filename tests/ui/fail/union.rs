use redux_cluster::Schema;

#[derive(Schema)]
pub union Bits {
    int: u32,
    float: f32,
}

fn main() {}
