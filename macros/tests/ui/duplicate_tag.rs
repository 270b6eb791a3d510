use ractor_otp::RemoteMessage;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, RemoteMessage)]
#[remote(tag = "Ping.v1")]
#[remote(tag = "Ping.v2")]
struct Ping;

fn main() {}
