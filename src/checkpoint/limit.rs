//! The size limit the durable stores ([`DiskStore`](super::DiskStore),
//! [`PostgresStore`](super::PostgresStore)) put on one checkpoint.

use super::CheckpointError;

/// The largest checkpoint a durable store accepts unless told otherwise:
/// 16 MiB. A state that large is saved whole on every save, so it is
/// usually a sign that the state should be split or kept elsewhere.
pub const DEFAULT_MAX_CHECKPOINT_BYTES: usize = 16 * 1024 * 1024;

/// Refuses a checkpoint of `size` bytes over `limit` with
/// [`CheckpointError::TooLarge`], before anything is written.
pub(crate) fn check_size(id: &str, size: usize, limit: usize) -> Result<(), CheckpointError> {
    if size > limit {
        return Err(CheckpointError::TooLarge {
            id: id.to_owned(),
            size,
            limit,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_itself_is_allowed_one_byte_more_is_not() {
        assert_eq!(check_size("a", 10, 10), Ok(()));
        assert_eq!(
            check_size("a", 11, 10),
            Err(CheckpointError::TooLarge {
                id: "a".into(),
                size: 11,
                limit: 10
            })
        );
    }
}
