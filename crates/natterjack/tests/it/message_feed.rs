//! `WatchMessages` across nodes: two real `serve` processes on one PostgreSQL database, a
//! watcher on one of them, messages posted on both.

use crate::support::grpc_client::{channel, issue_with};
use crate::support::nodes::Nodes;
use crate::support::pairs;
use natterjack_api::grpc::proto::WatchMessagesRequest;
use natterjack_api::grpc::proto::spaces_client::SpacesClient;
use std::time::Duration;

#[tokio::test]
async fn a_watcher_on_one_node_receives_every_nodes_messages_of_its_space_each_once() {
    let Some(nodes) = Nodes::start("message_feed", "30000").await else {
        return;
    };
    let alice = nodes.a.user("alice").await;
    let watched = nodes.a.space(&alice, "watched").await;
    let other = nodes.a.space(&alice, "other").await;
    // From B's development CA, which B's gRPC listener trusts.
    let cert = issue_with(&nodes.b.data_dir(), "alice", &pairs(&nodes.env));
    let mut watcher = SpacesClient::new(channel(&nodes.b, Some(&cert)));
    let mut stream = watcher
        .watch_messages(WatchMessagesRequest { space_id: watched })
        .await
        .unwrap()
        .into_inner();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("no message within 10 s")
            .unwrap()
            .expect("the stream ended")
            .message
    };
    nodes.a.message(&alice, other, "not watched").await;
    nodes.a.message(&alice, watched, "posted on A").await;
    nodes.b.message(&alice, watched, "posted on B").await;
    let mut seen = vec![next().await, next().await];
    seen.sort();
    assert_eq!(seen, ["posted on A", "posted on B"]);
    // Had B's own message come back through the database as well, it would be next.
    nodes.a.message(&alice, watched, "last").await;
    assert_eq!(next().await, "last");
    nodes.finish().await;
}
