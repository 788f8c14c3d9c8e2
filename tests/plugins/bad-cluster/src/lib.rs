//! A cluster type whose worker role nobody defines; and one that is fine.
use cgcloud_plugin_api::prelude::*;

#[derive(Default)]
struct Node;

impl Role for Node {}

cgcloud_plugin_api::export_plugin! {
    roles: [
        { name: "node-box", extends: "generic-debian-bookworm-box", description: "A node", new: Node::default },
    ],
    clusters: [
        { name: "good", leader: "node-box", worker: "bad-cluster/node-box", description: "Two kinds of node" },
        { name: "broken", leader: "node-box", worker: "no-such-box", description: "Missing its worker" },
    ]
}
