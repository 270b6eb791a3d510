// A message first written for local calls, then made remote. (A real one
// also derives serde's `Serialize` and `Deserialize`; they are left out
// here so the expected output holds only this derive's errors: serde adds
// its own "does not implement `Serialize`" after them, which does not say
// what to use instead.)
use ractor::RpcReplyPort;
use ractor_otp::cluster::RemoteReply;
use ractor_otp::RemoteMessage;

#[derive(RemoteMessage)]
enum Counter {
    Add(u64),
    Get(RpcReplyPort<u64>),
    Both(RemoteReply<u64>, Option<ractor::port::RpcReplyPort<String>>),
}

#[derive(RemoteMessage)]
struct Request {
    id: u64,
    reply: (u8, Vec<RpcReplyPort<bool>>),
}

fn main() {}
