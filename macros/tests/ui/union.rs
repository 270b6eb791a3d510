use ractor_otp::RemoteMessage;

#[derive(RemoteMessage)]
union Bits {
    int: u32,
    float: f32,
}

fn main() {}
