//! Prints the schema hash and store id of the sample store, one per line.
//! Built from scratch by `tests/schema.rs` (twice, in two target
//! directories) to show the hashes are the same in separate compilations.

include!("sample.rs");

fn main() {
    use redux_cluster::Reducer;
    println!("schema {}", <Sample as Reducer>::SCHEMA.to_hex());
    let id: String = <Sample as Reducer>::ID
        .0
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    println!("id {id}");
}
