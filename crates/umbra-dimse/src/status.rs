//! DIMSE status codes (PS3.7 Annex C).

use std::fmt;

/// A DIMSE status: the value of Status (0000,0900) in a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status(pub u16);

impl Status {
    /// 0000: success.
    pub const SUCCESS: Status = Status(0x0000);
    /// 0110: processing failure.
    pub const PROCESSING_FAILURE: Status = Status(0x0110);
    /// 0122: SOP class not supported.
    pub const SOP_CLASS_NOT_SUPPORTED: Status = Status(0x0122);
    /// 0211: unrecognised operation.
    pub const UNRECOGNIZED_OPERATION: Status = Status(0x0211);
    /// A700: refused, out of resources (C-STORE).
    pub const OUT_OF_RESOURCES: Status = Status(0xA700);
    /// A900: data set does not match SOP class (C-STORE).
    pub const DATA_SET_DOES_NOT_MATCH_SOP_CLASS: Status = Status(0xA900);
    /// C000: cannot understand (C-STORE).
    pub const CANNOT_UNDERSTAND: Status = Status(0xC000);
    /// B000: coercion of data elements (C-STORE warning).
    pub const COERCION_OF_DATA_ELEMENTS: Status = Status(0xB000);

    /// Success (0000).
    pub fn is_success(self) -> bool {
        self.0 == 0x0000
    }

    /// Warning: 0001, Bxxx, or 0107/0116 (attribute list error, value out of range).
    pub fn is_warning(self) -> bool {
        matches!(self.0, 0x0001 | 0x0107 | 0x0116 | 0xB000..=0xBFFF)
    }

    /// Pending (FF00, FF01): not used by C-STORE or C-ECHO.
    pub fn is_pending(self) -> bool {
        matches!(self.0, 0xFF00 | 0xFF01)
    }

    /// Cancel (FE00).
    pub fn is_cancel(self) -> bool {
        self.0 == 0xFE00
    }

    /// Anything that is not success, warning, pending or cancel is a failure.
    pub fn is_failure(self) -> bool {
        !(self.is_success() || self.is_warning() || self.is_pending() || self.is_cancel())
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:04X}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert!(Status::SUCCESS.is_success());
        assert!(Status(0xB007).is_warning());
        assert!(Status::OUT_OF_RESOURCES.is_failure());
        assert!(Status::UNRECOGNIZED_OPERATION.is_failure());
        assert!(!Status(0xFF00).is_failure());
    }
}
