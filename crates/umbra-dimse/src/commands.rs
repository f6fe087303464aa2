//! DIMSE command sets: group 0000, always Implicit VR Little Endian, led by Command Group
//! Length (PS3.7 §6.3, §9.3, E).
//!
//! The decoder is written for hostile input: every length is checked against what is left, the
//! whole set is bounded by [`MAX_COMMAND_SET`], and unknown elements are skipped.

use crate::status::Status;

/// Largest command set accepted from a peer (bytes). Real ones are a few hundred bytes.
pub const MAX_COMMAND_SET: usize = 64 * 1024;

/// Command Field (0000,0100) values.
pub mod field {
    /// C-STORE-RQ.
    pub const C_STORE_RQ: u16 = 0x0001;
    /// C-STORE-RSP.
    pub const C_STORE_RSP: u16 = 0x8001;
    /// C-GET-RQ.
    pub const C_GET_RQ: u16 = 0x0010;
    /// C-FIND-RQ.
    pub const C_FIND_RQ: u16 = 0x0020;
    /// C-MOVE-RQ.
    pub const C_MOVE_RQ: u16 = 0x0021;
    /// C-ECHO-RQ.
    pub const C_ECHO_RQ: u16 = 0x0030;
    /// C-ECHO-RSP.
    pub const C_ECHO_RSP: u16 = 0x8030;
    /// C-CANCEL-RQ (no response is ever sent).
    pub const C_CANCEL_RQ: u16 = 0x0FFF;
    /// Bit set in every response's command field.
    pub const RESPONSE_BIT: u16 = 0x8000;
}

/// Command Data Set Type (0000,0800) value meaning "no data set follows".
pub const NO_DATA_SET: u16 = 0x0101;
/// Command Data Set Type value written when a data set follows (any other value means the same).
pub const DATA_SET_PRESENT: u16 = 0x0000;

/// Priority (0000,0700): medium.
pub const PRIORITY_MEDIUM: u16 = 0x0000;

mod tag {
    pub const GROUP_LENGTH: u16 = 0x0000;
    pub const AFFECTED_SOP_CLASS_UID: u16 = 0x0002;
    pub const COMMAND_FIELD: u16 = 0x0100;
    pub const MESSAGE_ID: u16 = 0x0110;
    pub const MESSAGE_ID_BEING_RESPONDED_TO: u16 = 0x0120;
    pub const PRIORITY: u16 = 0x0700;
    pub const COMMAND_DATA_SET_TYPE: u16 = 0x0800;
    pub const STATUS: u16 = 0x0900;
    pub const ERROR_COMMENT: u16 = 0x0902;
    pub const AFFECTED_SOP_INSTANCE_UID: u16 = 0x1000;
    pub const MOVE_ORIGINATOR_AE: u16 = 0x1030;
    pub const MOVE_ORIGINATOR_MESSAGE_ID: u16 = 0x1031;
}

/// Why a command set could not be decoded or is not a valid command.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CommandError {
    /// The bytes end inside an element.
    #[error("command set truncated at byte {0}")]
    Truncated(usize),
    /// An element outside group 0000.
    #[error("element ({0:04X},{1:04X}) is not in the command group")]
    NotCommandGroup(u16, u16),
    /// An element whose length does not fit its value representation.
    #[error("element (0000,{element:04X}) has length {length}")]
    BadLength {
        /// element number in group 0000
        element: u16,
        /// declared length
        length: u32,
    },
    /// The command set is larger than [`MAX_COMMAND_SET`].
    #[error("command set larger than {MAX_COMMAND_SET} bytes")]
    TooLarge,
    /// Text that is not ASCII.
    #[error("element (0000,{0:04X}) is not ASCII text")]
    NotAscii(u16),
    /// A required element is absent.
    #[error("{command} lacks {element}")]
    Missing {
        /// the command
        command: &'static str,
        /// the missing attribute
        element: &'static str,
    },
    /// The same element twice, or elements out of order.
    #[error("element (0000,{0:04X}) out of order or repeated")]
    OutOfOrder(u16),
}

/// A DIMSE command set: the attributes C-ECHO and C-STORE use, plus the Command Field and
/// identification of any other command so that it can be refused.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommandSet {
    /// Command Field (0000,0100), see [`field`].
    pub command_field: u16,
    /// Affected SOP Class UID (0000,0002).
    pub affected_sop_class_uid: Option<String>,
    /// Message ID (0000,0110).
    pub message_id: Option<u16>,
    /// Message ID Being Responded To (0000,0120).
    pub message_id_being_responded_to: Option<u16>,
    /// Priority (0000,0700).
    pub priority: Option<u16>,
    /// Whether a data set follows: Command Data Set Type (0000,0800) other than 0101.
    pub has_data_set: bool,
    /// Status (0000,0900).
    pub status: Option<Status>,
    /// Error Comment (0000,0902).
    pub error_comment: Option<String>,
    /// Affected SOP Instance UID (0000,1000).
    pub affected_sop_instance_uid: Option<String>,
    /// Move Originator Application Entity Title (0000,1030).
    pub move_originator_ae: Option<String>,
    /// Move Originator Message ID (0000,1031).
    pub move_originator_message_id: Option<u16>,
}

impl CommandSet {
    /// C-ECHO-RQ.
    pub fn echo_rq(message_id: u16) -> Self {
        CommandSet {
            command_field: field::C_ECHO_RQ,
            affected_sop_class_uid: Some(crate::VERIFICATION.to_string()),
            message_id: Some(message_id),
            ..Default::default()
        }
    }

    /// C-ECHO-RSP answering the request with `message_id`.
    pub fn echo_rsp(message_id: u16, status: Status) -> Self {
        CommandSet {
            command_field: field::C_ECHO_RSP,
            affected_sop_class_uid: Some(crate::VERIFICATION.to_string()),
            message_id_being_responded_to: Some(message_id),
            status: Some(status),
            ..Default::default()
        }
    }

    /// C-STORE-RQ (a data set follows).
    pub fn store_rq(
        message_id: u16,
        sop_class_uid: &str,
        sop_instance_uid: &str,
        priority: u16,
        move_originator: Option<(&str, u16)>,
    ) -> Self {
        CommandSet {
            command_field: field::C_STORE_RQ,
            affected_sop_class_uid: Some(sop_class_uid.to_string()),
            affected_sop_instance_uid: Some(sop_instance_uid.to_string()),
            message_id: Some(message_id),
            priority: Some(priority),
            has_data_set: true,
            move_originator_ae: move_originator.map(|(ae, _)| ae.to_string()),
            move_originator_message_id: move_originator.map(|(_, id)| id),
            ..Default::default()
        }
    }

    /// C-STORE-RSP answering `rq`.
    pub fn store_rsp(rq: &CommandSet, status: Status, error_comment: Option<&str>) -> Self {
        CommandSet {
            command_field: field::C_STORE_RSP,
            affected_sop_class_uid: rq.affected_sop_class_uid.clone(),
            affected_sop_instance_uid: rq.affected_sop_instance_uid.clone(),
            message_id_being_responded_to: rq.message_id,
            status: Some(status),
            error_comment: error_comment.map(str::to_string),
            ..Default::default()
        }
    }

    /// The response to a request this implementation does not perform: the request's command
    /// field with the response bit, its message ID and SOP class, and `status` (normally
    /// [`Status::UNRECOGNIZED_OPERATION`]).
    pub fn refusal(rq: &CommandSet, status: Status) -> Self {
        CommandSet {
            command_field: rq.command_field | field::RESPONSE_BIT,
            affected_sop_class_uid: rq.affected_sop_class_uid.clone(),
            affected_sop_instance_uid: rq.affected_sop_instance_uid.clone(),
            message_id_being_responded_to: rq.message_id,
            status: Some(status),
            ..Default::default()
        }
    }

    /// Whether this is a response (command field has bit 15 set).
    pub fn is_response(&self) -> bool {
        self.command_field & field::RESPONSE_BIT != 0
    }

    /// A short name of the command for logs.
    pub fn name(&self) -> &'static str {
        match self.command_field {
            field::C_STORE_RQ => "C-STORE-RQ",
            field::C_STORE_RSP => "C-STORE-RSP",
            field::C_ECHO_RQ => "C-ECHO-RQ",
            field::C_ECHO_RSP => "C-ECHO-RSP",
            field::C_FIND_RQ => "C-FIND-RQ",
            field::C_GET_RQ => "C-GET-RQ",
            field::C_MOVE_RQ => "C-MOVE-RQ",
            field::C_CANCEL_RQ => "C-CANCEL-RQ",
            f if f & field::RESPONSE_BIT != 0 => "response",
            _ => "request",
        }
    }

    /// Checks that the attributes the command requires are present (C-ECHO and C-STORE
    /// requests and responses; other commands only need a command field).
    pub fn validate(&self) -> Result<(), CommandError> {
        let command = self.name();
        let need = |present: bool, element: &'static str| {
            if present {
                Ok(())
            } else {
                Err(CommandError::Missing { command, element })
            }
        };
        match self.command_field {
            field::C_STORE_RQ => {
                need(
                    self.affected_sop_class_uid.is_some(),
                    "Affected SOP Class UID",
                )?;
                need(
                    self.affected_sop_instance_uid.is_some(),
                    "Affected SOP Instance UID",
                )?;
                need(self.message_id.is_some(), "Message ID")?;
                need(self.has_data_set, "a data set")
            }
            field::C_ECHO_RQ => need(self.message_id.is_some(), "Message ID"),
            field::C_STORE_RSP | field::C_ECHO_RSP => {
                need(
                    self.message_id_being_responded_to.is_some(),
                    "Message ID Being Responded To",
                )?;
                need(self.status.is_some(), "Status")
            }
            _ => Ok(()),
        }
    }

    /// Encodes the command set, Command Group Length first.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(256);
        if let Some(uid) = &self.affected_sop_class_uid {
            put_text(&mut body, tag::AFFECTED_SOP_CLASS_UID, uid, 0);
        }
        put_u16(&mut body, tag::COMMAND_FIELD, self.command_field);
        if let Some(id) = self.message_id {
            put_u16(&mut body, tag::MESSAGE_ID, id);
        }
        if let Some(id) = self.message_id_being_responded_to {
            put_u16(&mut body, tag::MESSAGE_ID_BEING_RESPONDED_TO, id);
        }
        if let Some(p) = self.priority {
            put_u16(&mut body, tag::PRIORITY, p);
        }
        let dst = if self.has_data_set {
            DATA_SET_PRESENT
        } else {
            NO_DATA_SET
        };
        put_u16(&mut body, tag::COMMAND_DATA_SET_TYPE, dst);
        if let Some(s) = self.status {
            put_u16(&mut body, tag::STATUS, s.0);
        }
        if let Some(c) = &self.error_comment {
            // LO: at most 64 characters.
            let c: String = c.chars().filter(char::is_ascii).take(64).collect();
            put_text(&mut body, tag::ERROR_COMMENT, &c, b' ');
        }
        if let Some(uid) = &self.affected_sop_instance_uid {
            put_text(&mut body, tag::AFFECTED_SOP_INSTANCE_UID, uid, 0);
        }
        if let Some(ae) = &self.move_originator_ae {
            put_text(&mut body, tag::MOVE_ORIGINATOR_AE, ae, b' ');
        }
        if let Some(id) = self.move_originator_message_id {
            put_u16(&mut body, tag::MOVE_ORIGINATOR_MESSAGE_ID, id);
        }
        let mut out = Vec::with_capacity(body.len() + 12);
        put_header(&mut out, tag::GROUP_LENGTH, 4);
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Decodes a command set. Unknown group 0000 elements are skipped; anything outside group
    /// 0000, a bad length or a missing Command Field is an error.
    pub fn decode(bytes: &[u8]) -> Result<CommandSet, CommandError> {
        if bytes.len() > MAX_COMMAND_SET {
            return Err(CommandError::TooLarge);
        }
        let mut cs = CommandSet::default();
        let mut command_field = None;
        let mut pos = 0usize;
        let mut last: Option<u16> = None;
        while pos < bytes.len() {
            let header = bytes
                .get(pos..pos + 8)
                .ok_or(CommandError::Truncated(pos))?;
            let group = u16::from_le_bytes([header[0], header[1]]);
            let element = u16::from_le_bytes([header[2], header[3]]);
            let length = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
            if group != 0 {
                return Err(CommandError::NotCommandGroup(group, element));
            }
            if last.is_some_and(|l| element <= l) {
                return Err(CommandError::OutOfOrder(element));
            }
            last = Some(element);
            let start = pos + 8;
            let value = usize::try_from(length)
                .ok()
                .and_then(|len| start.checked_add(len))
                .and_then(|end| bytes.get(start..end))
                .ok_or(CommandError::Truncated(pos))?;
            pos = start + value.len();
            let us = || -> Result<u16, CommandError> {
                match value {
                    [a, b] => Ok(u16::from_le_bytes([*a, *b])),
                    _ => Err(CommandError::BadLength { element, length }),
                }
            };
            let text = |pad: &[char]| -> Result<String, CommandError> {
                if !value.is_ascii() {
                    return Err(CommandError::NotAscii(element));
                }
                let s = std::str::from_utf8(value).map_err(|_| CommandError::NotAscii(element))?;
                Ok(s.trim_end_matches(pad).trim_start_matches(' ').to_string())
            };
            match element {
                tag::GROUP_LENGTH if length != 4 => {
                    return Err(CommandError::BadLength { element, length });
                }
                tag::AFFECTED_SOP_CLASS_UID => {
                    cs.affected_sop_class_uid = Some(text(&['\0', ' '])?)
                }
                tag::COMMAND_FIELD => command_field = Some(us()?),
                tag::MESSAGE_ID => cs.message_id = Some(us()?),
                tag::MESSAGE_ID_BEING_RESPONDED_TO => {
                    cs.message_id_being_responded_to = Some(us()?)
                }
                tag::PRIORITY => cs.priority = Some(us()?),
                tag::COMMAND_DATA_SET_TYPE => cs.has_data_set = us()? != NO_DATA_SET,
                tag::STATUS => cs.status = Some(Status(us()?)),
                tag::ERROR_COMMENT => cs.error_comment = Some(text(&[' ', '\0'])?),
                tag::AFFECTED_SOP_INSTANCE_UID => {
                    cs.affected_sop_instance_uid = Some(text(&['\0', ' '])?)
                }
                tag::MOVE_ORIGINATOR_AE => cs.move_originator_ae = Some(text(&[' ', '\0'])?),
                tag::MOVE_ORIGINATOR_MESSAGE_ID => cs.move_originator_message_id = Some(us()?),
                _ => {}
            }
        }
        cs.command_field = command_field.ok_or(CommandError::Missing {
            command: "command set",
            element: "Command Field",
        })?;
        Ok(cs)
    }
}

fn put_header(out: &mut Vec<u8>, element: u16, length: u32) {
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&element.to_le_bytes());
    out.extend_from_slice(&length.to_le_bytes());
}

fn put_u16(out: &mut Vec<u8>, element: u16, value: u16) {
    put_header(out, element, 2);
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_text(out: &mut Vec<u8>, element: u16, value: &str, pad: u8) {
    let odd = value.len() % 2;
    put_header(out, element, (value.len() + odd) as u32);
    out.extend_from_slice(value.as_bytes());
    if odd == 1 {
        out.push(pad);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_rq_round_trip() {
        let rq = CommandSet::store_rq(
            7,
            "1.2.840.10008.5.1.4.1.1.2",
            "1.2.3.4.5",
            PRIORITY_MEDIUM,
            Some(("MOVER", 3)),
        );
        let bytes = rq.encode();
        // group length value equals what follows it
        let gl = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
        assert_eq!(gl, bytes.len() - 12);
        let back = CommandSet::decode(&bytes).unwrap();
        assert_eq!(back, rq);
        back.validate().unwrap();
    }

    #[test]
    fn echo_rsp_known_bytes() {
        // C-ECHO-RSP as dcmtk writes it.
        let rsp = CommandSet::echo_rsp(1, Status::SUCCESS);
        let bytes = rsp.encode();
        let back = CommandSet::decode(&bytes).unwrap();
        assert_eq!(back.command_field, field::C_ECHO_RSP);
        assert_eq!(
            back.affected_sop_class_uid.as_deref(),
            Some("1.2.840.10008.1.1")
        );
        assert!(!back.has_data_set);
        // "1.2.840.10008.1.1" is 17 characters: padded with one NUL.
        assert_eq!(&bytes[12..20], &[0, 0, 2, 0, 18, 0, 0, 0]);
    }

    #[test]
    fn refusal_keeps_id() {
        let mut rq = CommandSet::echo_rq(9);
        rq.command_field = field::C_FIND_RQ;
        let rsp = CommandSet::refusal(&rq, Status::UNRECOGNIZED_OPERATION);
        assert_eq!(rsp.command_field, 0x8020);
        assert_eq!(rsp.message_id_being_responded_to, Some(9));
    }

    #[test]
    fn malformed() {
        let good = CommandSet::echo_rq(1).encode();
        for cut in 0..good.len() {
            // every prefix either decodes (ends on an element boundary) or errors: no panic
            let _ = CommandSet::decode(&good[..cut]);
        }
        assert!(matches!(
            CommandSet::decode(&good[..good.len() - 1]),
            Err(CommandError::Truncated(_))
        ));
        let mut huge = good.clone();
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(CommandSet::decode(&huge).is_err());
        let mut other_group = good.clone();
        other_group[0] = 8;
        assert!(matches!(
            CommandSet::decode(&other_group),
            Err(CommandError::NotCommandGroup(8, 0))
        ));
        assert!(CommandSet::decode(&[]).is_err());
        let mut bad_us = Vec::new();
        put_header(&mut bad_us, tag::COMMAND_FIELD, 4);
        bad_us.extend_from_slice(&[1, 0, 0, 0]);
        assert!(matches!(
            CommandSet::decode(&bad_us),
            Err(CommandError::BadLength { .. })
        ));
        let no_instance = CommandSet {
            affected_sop_instance_uid: None,
            ..CommandSet::store_rq(1, "1.2", "1.3", 0, None)
        };
        assert!(no_instance.validate().is_err());
    }
}
