// Directly self-recursive types have a finite hash, whether they name
// themselves or `Self`, in a struct or an enum.
use redux_cluster::{reducer, ClusterStore, Schema};
use serde::{Deserialize, Serialize};

#[derive(Schema, Clone, Default, Serialize, Deserialize)]
pub struct Node {
    label: String,
    children: Vec<Node>,
}

#[derive(Schema, Clone, Default, Serialize, Deserialize)]
pub struct SelfNode {
    label: String,
    children: Vec<Self>,
}

#[derive(Schema, Clone, Serialize, Deserialize)]
pub enum Expr {
    Lit(i64),
    Add(Box<Expr>, Box<Self>),
    Neg(Option<Box<Expr>>),
}

#[derive(ClusterStore, Clone, Default, Serialize, Deserialize)]
pub struct Tree {
    root: Node,
    // A store state may name itself too.
    next: Option<Box<Tree>>,
}

#[reducer(Tree)]
#[derive(Serialize, Deserialize)]
pub enum TreeAction {
    Graft(Node),
    Eval(Expr),
}

fn reduce(state: &mut Tree, action: &TreeAction) {
    match action {
        TreeAction::Graft(n) => state.root.children.push(n.clone()),
        TreeAction::Eval(_) => {}
    }
}

fn main() {
    // `Vec<Node>` inside `Node` and `Vec<Self>` inside `SelfNode` are the
    // same structure.
    assert_eq!(<Node as Schema>::HASH, <SelfNode as Schema>::HASH);
    assert_eq!(
        redux_cluster::describe::<Node>(),
        "{label:String,children:Vec<Self>,}"
    );
    let store = Tree::start_master().expect("a plain process is its own master");
    store
        .dispatch(TreeAction::Graft(Node::default()))
        .expect("the master applies at once");
    store
        .dispatch(TreeAction::Eval(Expr::Add(
            Box::new(Expr::Lit(1)),
            Box::new(Expr::Neg(None)),
        )))
        .expect("the master applies at once");
    assert_eq!(store.state().root.children.len(), 1);
    assert!(store.state().next.is_none());
}
