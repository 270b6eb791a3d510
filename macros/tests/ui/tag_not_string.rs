use ractor_otp::RemoteMessage;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, RemoteMessage)]
#[remote(tag = Ping)]
struct Ping;

fn main() {}
