use ractor_otp::RemoteMessage;

#[derive(RemoteMessage)]
struct Ping;

fn main() {}
