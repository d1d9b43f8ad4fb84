use redux_cluster::reducer;

#[reducer]
pub enum Orphan {
    A,
}

fn main() {}
