use ractor_otp::RemoteMessage;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, RemoteMessage)]
struct Envelope<T> {
    body: T,
}

#[derive(Serialize, Deserialize, RemoteMessage)]
struct Borrowed<'a> {
    name: &'a str,
}

fn main() {}
