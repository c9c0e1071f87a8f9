//! Redis ACL users for the least-privilege tests: one user set up on one node (ACLs are per
//! node, not replicated, so a topology sets its users on each of its nodes).

use super::redis_nodes::connect;

/// `ACL SETUSER <user> reset on ><password> <rules…>` on the node at `port`.
pub fn setuser(
    port: u16,
    admin_password: Option<&str>,
    user: &str,
    password: &str,
    rules: &[&str],
) {
    let mut conn =
        connect(port, admin_password).unwrap_or_else(|e| panic!("connect to node {port}: {e}"));
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(user)
        .arg("reset")
        .arg("on")
        .arg(format!(">{password}"))
        .arg(rules)
        .query(&mut conn)
        .unwrap_or_else(|e| panic!("ACL SETUSER {user} {rules:?} on {port}: {e}"));
}
