//! Upper-layer framing: reading PDUs with a bounded length, P-DATA-TF parsed in place into
//! PDV fragments, and writing PDUs and PDVs. Other PDUs are decoded and encoded by dicom-ul.

use std::io::{Read, Write};

use dicom_ul::pdu::{Pdu, read_pdu, write_pdu};

use crate::error::Error;
use crate::scp::StoreSink;

/// Size of a PDU header: type, reserved, 32-bit length.
pub(crate) const PDU_HEADER: usize = 6;
/// Size of a PDV item header inside P-DATA-TF: 32-bit length, context ID, control header.
pub(crate) const PDV_HEADER: usize = 6;
/// P-DATA-TF PDU type.
pub(crate) const P_DATA_TF: u8 = 0x04;
/// Largest association-negotiation or other non-P-DATA PDU accepted (A-ASSOCIATE-RQ with 128
/// contexts of long UIDs stays far below it).
pub(crate) const MAX_CONTROL_PDU: u32 = 256 * 1024;
/// Read buffer size.
const READ_BUFFER: usize = 64 * 1024;

/// A stream an association runs over: a TCP socket, or TLS over one.
pub trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// One presentation data value fragment of a P-DATA-TF PDU.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pdv<'a> {
    pub context_id: u8,
    pub is_command: bool,
    pub is_last: bool,
    pub data: &'a [u8],
}

/// A PDU as received.
pub(crate) enum Received<'a> {
    /// P-DATA-TF: its PDV items, parsed in place.
    PData(Vec<Pdv<'a>>),
    /// Any other PDU, decoded by dicom-ul.
    Other(Pdu),
}

/// What [`Connection::receive_to`] did with a PDU.
pub(crate) enum Taken<'a> {
    /// P-DATA-TF whose one PDV, the next fragment of the data set being received, went
    /// straight into the sink; whether it was the data set's last.
    Direct { is_last: bool },
    /// Any PDU, as [`Connection::receive`] reads it.
    Pdu(Received<'a>),
}

/// Buffered reading and direct writing on one stream.
pub(crate) struct Connection<S> {
    stream: S,
    rbuf: Box<[u8]>,
    rpos: usize,
    rlen: usize,
    frame: Vec<u8>,
    wbuf: Vec<u8>,
}

impl<S: Stream> Connection<S> {
    pub fn new(stream: S) -> Self {
        Connection {
            stream,
            rbuf: vec![0; READ_BUFFER].into_boxed_slice(),
            rpos: 0,
            rlen: 0,
            frame: Vec::new(),
            wbuf: Vec::new(),
        }
    }

    #[cfg(test)]
    pub fn stream_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// Fills `out` from the buffer and then the stream. `at_start`: end of stream before the
    /// first byte is a clean close.
    fn fill(&mut self, out: &mut [u8], at_start: bool) -> Result<(), Error> {
        self.fill_ahead(out, at_start, true)
    }

    /// [`Self::fill`]; without `ahead`, nothing past `out` is read from the stream (the bytes
    /// after it are to go elsewhere).
    fn fill_ahead(&mut self, mut out: &mut [u8], at_start: bool, ahead: bool) -> Result<(), Error> {
        let mut first = at_start;
        while !out.is_empty() {
            if self.rpos < self.rlen {
                let n = out.len().min(self.rlen - self.rpos);
                out[..n].copy_from_slice(&self.rbuf[self.rpos..self.rpos + n]);
                self.rpos += n;
                out = &mut out[n..];
                first = false;
                continue;
            }
            let n = if !ahead || out.len() >= self.rbuf.len() {
                // large remainder (or nothing to read ahead): read straight into the destination
                let n = read_some(&mut self.stream, out)?;
                out = &mut out[n..];
                n
            } else {
                let n = read_some(&mut self.stream, &mut self.rbuf)?;
                self.rpos = 0;
                self.rlen = n;
                n
            };
            if n == 0 {
                return Err(if first {
                    Error::Closed
                } else {
                    Error::MalformedPdu("stream ended inside a PDU".into())
                });
            }
            first = false;
        }
        Ok(())
    }

    /// Reads one PDU. P-DATA-TF longer than `max_pdata` and other PDUs longer than
    /// [`MAX_CONTROL_PDU`] are refused before anything is allocated for them.
    pub fn receive(&mut self, max_pdata: u32) -> Result<Received<'_>, Error> {
        match self.receive_to(max_pdata, None)? {
            Taken::Pdu(pdu) => Ok(pdu),
            // (never without a sink)
            Taken::Direct { .. } => Err(Error::Protocol("data set fragment out of place".into())),
        }
    }

    /// [`Self::receive`] while a data set is being received on presentation context `direct.0`
    /// into the sink `direct.1`: a P-DATA-TF whose one PDV is the data set's next fragment goes
    /// from the network straight into the sink's memory when the sink takes it so
    /// ([`StoreSink::reads_direct`]), instead of through this connection's buffers (two copies
    /// fewer per byte). Anything else is read as [`Self::receive`] reads it.
    pub fn receive_to(
        &mut self,
        max_pdata: u32,
        direct: Option<(u8, &mut dyn StoreSink)>,
    ) -> Result<Taken<'_>, Error> {
        let mut header = [0u8; PDU_HEADER];
        // while a data set comes, no read-ahead past the headers: its bytes are to go straight
        // to the sink
        self.fill_ahead(&mut header, true, direct.is_none())?;
        let pdu_type = header[0];
        let length = u32::from_be_bytes([header[2], header[3], header[4], header[5]]);
        if !(0x01..=0x07).contains(&pdu_type) {
            return Err(Error::MalformedPdu(format!(
                "unknown PDU type {pdu_type:#04x}"
            )));
        }
        let max = if pdu_type == P_DATA_TF {
            max_pdata
        } else {
            MAX_CONTROL_PDU
        };
        if length > max {
            return Err(Error::PduTooLarge { length, max });
        }
        let mut pdv = [0u8; PDV_HEADER];
        let mut have_pdv = false;
        if let Some((context_id, sink)) = direct
            && pdu_type == P_DATA_TF
            && length as usize >= PDV_HEADER
        {
            self.fill_ahead(&mut pdv, false, false)?;
            have_pdv = true;
            let item = u32::from_be_bytes([pdv[0], pdv[1], pdv[2], pdv[3]]) as usize;
            let (pdv_context, control) = (pdv[4], pdv[5]);
            // one PDV filling the PDU, a data set fragment on the context of the data set
            if item + 4 == length as usize
                && item >= 2
                && pdv_context == context_id
                && control & 0x01 == 0
                && sink.reads_direct(item - 2)
            {
                self.read_into(sink, item - 2)?;
                return Ok(Taken::Direct {
                    is_last: control & 0x02 != 0,
                });
            }
        }
        let end = PDU_HEADER + length as usize;
        let mut frame = std::mem::take(&mut self.frame);
        // grown (and zeroed) only when a longer PDU comes: every byte up to `end` is read over
        if frame.len() < end {
            frame.resize(end, 0);
        }
        frame[..PDU_HEADER].copy_from_slice(&header);
        let mut at = PDU_HEADER;
        if have_pdv {
            frame[at..at + PDV_HEADER].copy_from_slice(&pdv);
            at += PDV_HEADER;
        }
        let filled = self.fill(&mut frame[at..end], false);
        self.frame = frame;
        filled?;
        if pdu_type == P_DATA_TF {
            return parse_pdata(&self.frame[PDU_HEADER..end])
                .map(|p| Taken::Pdu(Received::PData(p)));
        }
        let frame: &[u8] = &self.frame[..end];
        // dicom-ul checks its lengths; the guard keeps a mistake there from taking the
        // process down on hostile input.
        let decoded =
            std::panic::catch_unwind(|| read_pdu(frame, dicom_ul::pdu::MAXIMUM_PDU_SIZE, false))
                .map_err(|_| Error::MalformedPdu("PDU decoder failed".into()))?;
        match decoded {
            Ok(Some(pdu)) => Ok(Taken::Pdu(Received::Other(pdu))),
            Ok(None) => Err(Error::MalformedPdu("incomplete PDU".into())),
            Err(e) => Err(Error::MalformedPdu(e.to_string())),
        }
    }

    /// Moves `n` bytes of a PDV into `sink`: those already read ahead into this connection's
    /// buffer, then the rest straight from the stream.
    fn read_into(&mut self, sink: &mut dyn StoreSink, n: usize) -> Result<(), Error> {
        let ahead = n.min(self.rlen - self.rpos);
        if ahead > 0 {
            sink.write_all(&self.rbuf[self.rpos..self.rpos + ahead])?;
            self.rpos += ahead;
        }
        sink.read_from(&mut self.stream, n - ahead)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => {
                    Error::MalformedPdu("stream ended inside a PDU".into())
                }
                _ => e.into(),
            })
    }

    /// Sends a non-P-DATA PDU.
    pub fn send(&mut self, pdu: &Pdu) -> Result<(), Error> {
        self.wbuf.clear();
        write_pdu(&mut self.wbuf, pdu).map_err(|e| Error::Protocol(e.to_string()))?;
        self.stream.write_all(&self.wbuf)?;
        self.stream.flush()?;
        Ok(())
    }

    /// Sends one P-DATA-TF PDU carrying one PDV with `data`.
    pub fn send_pdv(
        &mut self,
        context_id: u8,
        is_command: bool,
        is_last: bool,
        data: &[u8],
    ) -> Result<(), Error> {
        self.send_pdvs(context_id, is_command, &[(vec![data], is_last)])
    }

    /// Sends a P-DATA-TF PDU whose `frame` holds [`PDU_HEADER`] + [`PDV_HEADER`] bytes of
    /// room followed by the PDV data; the headers are filled in here.
    pub fn send_pdv_frame(
        &mut self,
        frame: &mut [u8],
        context_id: u8,
        is_command: bool,
        is_last: bool,
    ) -> Result<(), Error> {
        let data_len = frame.len() - PDU_HEADER - PDV_HEADER;
        frame[..PDU_HEADER + PDV_HEADER]
            .copy_from_slice(&pdv_header(context_id, is_command, is_last, data_len)?);
        self.stream.write_all(frame)?;
        self.stream.flush()?;
        Ok(())
    }

    /// Sends P-DATA-TF PDUs, each carrying one PDV: `pdvs` holds each one's data as parts (one
    /// after another) and whether it is the last of its message. They are written from where
    /// they are, together, in as few vectored writes as the kernel takes (no copy into a
    /// buffer, and one system call for many PDUs).
    pub fn send_pdvs(
        &mut self,
        context_id: u8,
        is_command: bool,
        pdvs: &[(Vec<&[u8]>, bool)],
    ) -> Result<(), Error> {
        let headers = pdvs
            .iter()
            .map(|(parts, is_last)| {
                let data_len = parts.iter().map(|p| p.len()).sum();
                pdv_header(context_id, is_command, *is_last, data_len)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut slices: Vec<std::io::IoSlice<'_>> = Vec::new();
        for ((parts, _), header) in pdvs.iter().zip(&headers) {
            slices.push(std::io::IoSlice::new(header));
            slices.extend(
                parts
                    .iter()
                    .filter(|p| !p.is_empty())
                    .map(|p| std::io::IoSlice::new(p)),
            );
        }
        let mut bufs = &mut slices[..];
        while !bufs.is_empty() {
            match self.stream.write_vectored(bufs) {
                Ok(0) => return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into()),
                Ok(n) => std::io::IoSlice::advance_slices(&mut bufs, n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.stream.flush()?;
        Ok(())
    }

    /// Splits a small message part (a command set) into PDVs of at most `max_data` bytes.
    pub fn send_fragments(
        &mut self,
        context_id: u8,
        is_command: bool,
        data: &[u8],
        max_data: usize,
    ) -> Result<(), Error> {
        let mut chunks = data.chunks(max_data.max(1)).peekable();
        if chunks.peek().is_none() {
            return self.send_pdv(context_id, is_command, true, &[]);
        }
        while let Some(chunk) = chunks.next() {
            let last = chunks.peek().is_none();
            self.send_pdv(context_id, is_command, last, chunk)?;
        }
        Ok(())
    }
}

/// The PDU and PDV headers of a P-DATA-TF PDU carrying one PDV of `data_len` bytes.
fn pdv_header(
    context_id: u8,
    is_command: bool,
    is_last: bool,
    data_len: usize,
) -> Result<[u8; PDU_HEADER + PDV_HEADER], Error> {
    let pdv_len = u32::try_from(data_len + 2)
        .ok()
        .filter(|&n| n <= u32::MAX - 4)
        .ok_or_else(|| Error::Protocol("PDV longer than a PDU can carry".into()))?;
    let mut header = [0u8; PDU_HEADER + PDV_HEADER];
    header[0] = P_DATA_TF;
    header[2..6].copy_from_slice(&(pdv_len + 4).to_be_bytes());
    header[6..10].copy_from_slice(&pdv_len.to_be_bytes());
    header[10] = context_id;
    header[11] = u8::from(is_command) | (u8::from(is_last) << 1);
    Ok(header)
}

fn read_some<S: Read>(stream: &mut S, buf: &mut [u8]) -> Result<usize, Error> {
    loop {
        match stream.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Parses the PDV items of a P-DATA-TF body.
pub(crate) fn parse_pdata(mut body: &[u8]) -> Result<Vec<Pdv<'_>>, Error> {
    let mut pdvs = Vec::new();
    if body.is_empty() {
        return Err(Error::MalformedPdu("P-DATA-TF without PDV items".into()));
    }
    while !body.is_empty() {
        let [a, b, c, d, rest @ ..] = body else {
            return Err(Error::MalformedPdu("truncated PDV item header".into()));
        };
        let len = u32::from_be_bytes([*a, *b, *c, *d]) as usize;
        if len < 2 || len > rest.len() {
            return Err(Error::MalformedPdu(format!(
                "PDV item length {len} with {} bytes left",
                rest.len()
            )));
        }
        let control = rest[1];
        pdvs.push(Pdv {
            context_id: rest[0],
            is_command: control & 0x01 != 0,
            is_last: control & 0x02 != 0,
            data: &rest[2..len],
        });
        body = &rest[len..];
    }
    Ok(pdvs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pdata_items() {
        let body = [0, 0, 0, 4, 1, 3, 0xAA, 0xBB, 0, 0, 0, 2, 1, 0];
        let pdvs = parse_pdata(&body).unwrap();
        assert_eq!(pdvs.len(), 2);
        assert!(pdvs[0].is_command && pdvs[0].is_last);
        assert_eq!(pdvs[0].data, &[0xAA, 0xBB]);
        assert!(pdvs[1].data.is_empty() && !pdvs[1].is_last);
        assert!(parse_pdata(&[0, 0, 0, 9, 1, 3]).is_err());
        assert!(parse_pdata(&[0, 0, 0, 1, 1]).is_err());
        assert!(parse_pdata(&[0, 0]).is_err());
        assert!(parse_pdata(&[]).is_err());
    }

    #[test]
    fn refuses_huge_declared_length() {
        let bytes = [4u8, 0, 0xFF, 0xFF, 0xFF, 0xF0];
        let mut c = Connection::new(std::io::Cursor::new(bytes.to_vec()));
        assert!(matches!(c.receive(16384), Err(Error::PduTooLarge { .. })));
        let bytes = [1u8, 0, 0x10, 0, 0, 0];
        let mut c = Connection::new(std::io::Cursor::new(bytes.to_vec()));
        assert!(matches!(c.receive(16384), Err(Error::PduTooLarge { .. })));
    }

    #[test]
    fn pdv_round_trip() {
        let mut c = Connection::new(std::io::Cursor::new(Vec::new()));
        c.send_pdv(3, false, true, b"hello").unwrap();
        let written = c.stream_mut().get_ref().clone();
        let mut r = Connection::new(std::io::Cursor::new(written));
        match r.receive(16384).unwrap() {
            Received::PData(pdvs) => {
                assert_eq!(pdvs.len(), 1);
                assert_eq!(pdvs[0].context_id, 3);
                assert!(!pdvs[0].is_command && pdvs[0].is_last);
                assert_eq!(pdvs[0].data, b"hello");
            }
            Received::Other(_) => panic!("not P-DATA"),
        }
        assert!(matches!(r.receive(16384), Err(Error::Closed)));
    }

    #[test]
    fn a_short_pdu_after_a_long_one_is_read_alone() {
        // the frame buffer keeps the longer PDU's size: nothing of it may leak into the next
        let mut c = Connection::new(std::io::Cursor::new(Vec::new()));
        c.send_pdv(1, false, false, &[0xEE; 300]).unwrap();
        c.send_pdv(1, false, true, b"tail").unwrap();
        let written = c.stream_mut().get_ref().clone();
        let mut r = Connection::new(std::io::Cursor::new(written));
        for (len, last) in [(300, false), (4, true)] {
            match r.receive(16384).unwrap() {
                Received::PData(pdvs) => {
                    assert_eq!(pdvs.len(), 1);
                    assert_eq!((pdvs[0].data.len(), pdvs[0].is_last), (len, last));
                }
                Received::Other(_) => panic!("not P-DATA"),
            }
        }
    }
}
