use ractor_otp::RemoteMessage;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, RemoteMessage)]
#[remote(tag = "")]
struct Ping;

#[derive(Serialize, Deserialize, RemoteMessage)]
#[remote(tag = "shop Order")]
struct Order;

fn main() {}
