use ractor_otp::RemoteMessage;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, RemoteMessage)]
#[remote]
struct Ping;

fn main() {}
