//! Incremental decoding of a byte stream into frames, and of datagrams.

use alloc::vec::Vec;
use bytes::{Buf, Bytes};

use crate::error::ProtocolError;
use crate::frame::{parse_header, Frame, Header, MAGIC};

/// The most a frame's buffer holds beyond the bytes that arrived: room
/// reserved ahead so a frame trickling in does not reallocate per read, but
/// never more than this (and never more than the bytes so far, while they
/// are few), whatever length the frame claims.
pub const GROWTH_SLACK: usize = 4096;

/// Turns a byte stream, delivered in pieces of any size, into frames.
///
/// It expects the peer's [`MAGIC`] first, then frames. The memory it holds
/// is one incomplete frame at most: a frame's declared length is checked
/// against the maximum as soon as its header is complete, and its buffer
/// then grows only as its bytes arrive — never reserved from the length it
/// claims — so a peer costs what it sent plus a small constant
/// ([`GROWTH_SLACK`] at most). Between frames it holds no buffer at all.
///
/// After an error the decoder is finished; the session closes.
///
/// # Examples
///
/// ```
/// use pulse_proto::frame::{Frame, MAGIC};
/// use pulse_proto::StreamDecoder;
///
/// let mut wire = MAGIC.to_vec();
/// Frame::Ping { id: 9 }.encode(&mut wire);
///
/// let mut decoder = StreamDecoder::new(1024);
/// // Byte by byte or all at once, the same frame comes out.
/// let mut frames = Vec::new();
/// for byte in &wire {
///     let mut input = &[*byte][..];
///     while let Some(frame) = decoder.decode(&mut input).unwrap() {
///         frames.push(frame);
///     }
/// }
/// assert_eq!(frames, [Frame::Ping { id: 9 }]);
/// ```
#[derive(Debug)]
pub struct StreamDecoder {
    /// The incomplete frame: its header bytes until the header parses, then
    /// its body so far. A `Vec` (not `BytesMut`): smaller inline, and it
    /// turns into `Bytes` without a copy.
    partial: Vec<u8>,
    max_len: u32,
    /// Body length of the frame being filled, once its header parsed.
    body_len: u32,
    frame_type: u8,
    in_body: bool,
    magic_seen: u8,
}

impl StreamDecoder {
    /// A decoder that accepts frame bodies up to `max_len` bytes and
    /// expects the magic first.
    pub fn new(max_len: u32) -> Self {
        StreamDecoder {
            partial: Vec::new(),
            max_len,
            body_len: 0,
            frame_type: 0,
            in_body: false,
            magic_seen: 0,
        }
    }

    /// Bytes held for an incomplete frame (its header and body so far).
    pub fn buffered(&self) -> usize {
        self.partial.len()
    }

    /// Bytes of memory reserved for the incomplete frame.
    pub fn capacity(&self) -> usize {
        self.partial.capacity()
    }

    /// Whether the magic has been seen in full.
    pub fn magic_done(&self) -> bool {
        usize::from(self.magic_seen) == MAGIC.len()
    }

    /// Changes the largest frame body accepted from the next frame on (the
    /// session raises it from the handshake's bound once established).
    pub fn set_max_len(&mut self, max_len: u32) {
        self.max_len = max_len;
    }

    /// Decodes the next frame from what is buffered plus `input`, taking
    /// from `input` only what that frame needs. `Ok(None)`: `input` is used
    /// up and no whole frame is ready. DATA payloads are zero-copy slices of
    /// `input` when the whole frame lies in it and `input` is [`bytes::Bytes`].
    pub fn decode(&mut self, input: &mut impl Buf) -> Result<Option<Frame>, ProtocolError> {
        self.match_magic(input)?;
        loop {
            match self.in_body {
                true => return self.fill_body(input),
                false if self.partial.is_empty() => {
                    let chunk = input.chunk();
                    if chunk.is_empty() {
                        return Ok(None);
                    }
                    match parse_header(chunk, self.max_len)? {
                        Some(header) => {
                            input.advance(header.header_len);
                            if input.remaining() >= header.body_len {
                                let body = input.copy_to_bytes(header.body_len);
                                return Frame::decode_body(header.frame_type, body).map(Some);
                            }
                            self.start_body(header);
                        }
                        None => {
                            // A header split across reads: keep its few bytes.
                            let n = chunk.len();
                            self.partial.extend_from_slice(chunk);
                            input.advance(n);
                        }
                    }
                }
                false => {
                    if !input.has_remaining() {
                        return Ok(None);
                    }
                    self.partial.push(input.get_u8());
                    if let Some(header) = parse_header(&self.partial, self.max_len)? {
                        self.start_body(header);
                    }
                }
            }
        }
    }

    fn match_magic(&mut self, input: &mut impl Buf) -> Result<(), ProtocolError> {
        while !self.magic_done() {
            if !input.has_remaining() {
                return Ok(());
            }
            let seen = usize::from(self.magic_seen);
            let byte = input.get_u8();
            if byte != MAGIC[seen] {
                let mut received = [0u8; 4];
                received[..seen].copy_from_slice(&MAGIC[..seen]);
                received[seen] = byte;
                let mut len = seen + 1;
                for &next in input.chunk().iter().take(4 - len) {
                    received[len] = next;
                    len += 1;
                }
                return Err(ProtocolError::BadMagic {
                    received,
                    len: len as u8,
                });
            }
            self.magic_seen += 1;
        }
        Ok(())
    }

    fn start_body(&mut self, header: Header) {
        self.in_body = true;
        self.frame_type = header.frame_type;
        self.body_len = header.body_len as u32; // checked against max_len (a u32)
                                                // Nothing reserved from the claimed length: the body grows as it arrives.
        self.partial = Vec::new();
    }

    fn fill_body(&mut self, input: &mut impl Buf) -> Result<Option<Frame>, ProtocolError> {
        let body_len = self.body_len as usize;
        while self.partial.len() < body_len && input.has_remaining() {
            let chunk = input.chunk();
            let n = chunk.len().min(body_len - self.partial.len());
            let have = self.partial.len() + n;
            if have > self.partial.capacity() {
                // Slack of at most what has arrived (doubling while small),
                // capped at GROWTH_SLACK, and never past the frame's end.
                let slack = have.min(GROWTH_SLACK).min(body_len - have);
                self.partial.reserve_exact(have + slack - self.partial.len());
            }
            self.partial.extend_from_slice(&chunk[..n]);
            input.advance(n);
        }
        if self.partial.len() < body_len {
            return Ok(None);
        }
        self.in_body = false;
        let body = Bytes::from(core::mem::take(&mut self.partial));
        Frame::decode_body(self.frame_type, body).map(Some)
    }
}

/// Decodes the next frame of a datagram. Each datagram holds whole frames:
/// a frame cut short by the datagram's end is malformed.
pub fn next_datagram_frame(datagram: &mut impl Buf, max_len: u32) -> Result<Option<Frame>, ProtocolError> {
    if !datagram.has_remaining() {
        return Ok(None);
    }
    let Some(header) = parse_header(datagram.chunk(), max_len)? else {
        return Err(ProtocolError::Malformed {
            frame_type: datagram.chunk()[0],
            what: "frame header cut by the datagram's end",
        });
    };
    datagram.advance(header.header_len);
    if datagram.remaining() < header.body_len {
        return Err(ProtocolError::Malformed {
            frame_type: header.frame_type,
            what: "frame body cut by the datagram's end",
        });
    }
    let body = datagram.copy_to_bytes(header.body_len);
    Frame::decode_body(header.frame_type, body).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::frame_type;
    use alloc::vec::Vec;
    use bytes::Bytes;

    fn wire(frames: &[Frame]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        for f in frames {
            f.encode(&mut out);
        }
        out
    }

    fn decode_all(decoder: &mut StreamDecoder, mut input: Bytes) -> Result<Vec<Frame>, ProtocolError> {
        let mut frames = Vec::new();
        while let Some(frame) = decoder.decode(&mut input)? {
            frames.push(frame);
        }
        assert!(input.is_empty(), "decoder left input behind");
        Ok(frames)
    }

    #[test]
    fn data_payloads_point_into_the_input_when_the_frame_is_whole() {
        let input = Bytes::from(wire(&[Frame::Data {
            tag: 1,
            payload: Bytes::from(alloc::vec![5u8; 1000]),
        }]));
        let range = input.as_ptr_range();
        let frames = decode_all(&mut StreamDecoder::new(4096), input.clone()).unwrap();
        let Frame::Data { payload, .. } = &frames[0] else {
            panic!()
        };
        assert!(range.contains(&payload.as_ptr()), "payload was copied");
    }

    #[test]
    fn an_http_request_is_refused_at_its_first_byte_with_a_readable_error() {
        let err = decode_all(
            &mut StreamDecoder::new(4096),
            Bytes::from_static(b"GET / HTTP/1.1\r\n\r\n"),
        )
        .unwrap_err();
        assert_eq!(
            err,
            ProtocolError::BadMagic {
                received: *b"GET ",
                len: 4
            }
        );
        let shown = alloc::format!("{err}");
        assert!(shown.contains("GET ") && shown.contains("HTTP"), "{shown}");
    }

    #[test]
    fn an_oversized_frame_is_refused_before_its_body_is_buffered() {
        let mut decoder = StreamDecoder::new(1000);
        let mut input = MAGIC.to_vec();
        input.push(frame_type::DATA);
        crate::varint::encode(1_000_000, &mut input);
        input.extend_from_slice(&[0; 100]);
        let err = decode_all(&mut decoder, Bytes::from(input)).unwrap_err();
        assert_eq!(
            err,
            ProtocolError::FrameTooLarge {
                len: 1_000_000,
                max: 1000
            }
        );
        assert!(decoder.capacity() <= 16, "buffered {}", decoder.capacity());
    }

    #[test]
    fn a_frame_claiming_its_maximum_costs_only_what_arrived() {
        let mut decoder = StreamDecoder::new(256 * 1024);
        let mut input = MAGIC.to_vec();
        input.push(frame_type::DATA);
        crate::varint::encode(256 * 1024, &mut input);
        assert_eq!(decode_all(&mut decoder, Bytes::from(input)).unwrap(), []);
        assert_eq!(decoder.capacity(), 0, "reserved from the claimed length");
        let mut sent = 0;
        for piece in [1usize, 10, 100, 1000, 10_000, 100_000] {
            sent += piece;
            decode_all(&mut decoder, Bytes::from(alloc::vec![0u8; piece])).unwrap();
            assert_eq!(decoder.buffered(), sent);
            assert!(
                decoder.capacity() <= sent + sent.min(GROWTH_SLACK),
                "holds {} for {sent} bytes received",
                decoder.capacity()
            );
        }
    }

    #[test]
    fn a_frame_arriving_a_byte_at_a_time_grows_its_buffer_in_few_steps() {
        // Doubling while small, then GROWTH_SLACK at a time: a 200 KiB body
        // is copied a few dozen times, not once per few bytes.
        let body = 200 * 1024;
        let mut decoder = StreamDecoder::new(1 << 20);
        let mut input = MAGIC.to_vec();
        input.push(frame_type::DATA);
        crate::varint::encode(body as u64, &mut input);
        decode_all(&mut decoder, Bytes::from(input)).unwrap();
        let (mut growths, mut capacity) = (0, 0);
        let byte = Bytes::from_static(&[0]);
        for _ in 0..body - 1 {
            decode_all(&mut decoder, byte.clone()).unwrap();
            if decoder.capacity() != capacity {
                (growths, capacity) = (growths + 1, decoder.capacity());
            }
        }
        assert!(capacity <= body, "{capacity} for a body of {body}");
        assert!(growths <= body / GROWTH_SLACK + 16, "{growths} growths");
    }

    #[test]
    fn a_frame_in_progress_holds_its_bytes_and_never_more_than_its_length() {
        let mut decoder = StreamDecoder::new(1 << 20);
        let mut wire = MAGIC.to_vec();
        Frame::Data {
            tag: 1,
            payload: Bytes::from(alloc::vec![3u8; 4_998]),
        }
        .encode(&mut wire);
        let (first, rest) = wire.split_at(3_000);
        decode_all(&mut decoder, Bytes::copy_from_slice(first)).unwrap();
        assert!(decoder.capacity() >= decoder.buffered() && decoder.buffered() > 2_900);
        assert!(
            decoder.capacity() <= 5_000,
            "{} for a 5,000-byte body",
            decoder.capacity()
        );
        // The rest arrives one byte at a time: never past the frame's end.
        for byte in &rest[..rest.len() - 1] {
            decode_all(&mut decoder, Bytes::copy_from_slice(&[*byte])).unwrap();
            assert!(decoder.capacity() <= 5_000, "{}", decoder.capacity());
        }
        let frames = decode_all(&mut decoder, Bytes::copy_from_slice(&rest[rest.len() - 1..])).unwrap();
        assert!(matches!(&frames[..], [Frame::Data { payload, .. }] if payload.len() == 4_998));
    }

    #[test]
    fn the_maximum_can_be_raised_for_the_next_frame() {
        let mut decoder = StreamDecoder::new(256);
        let mut wire = MAGIC.to_vec();
        Frame::Data {
            tag: 1,
            payload: Bytes::from(alloc::vec![0u8; 1_000]),
        }
        .encode(&mut wire);
        decoder.set_max_len(4096);
        assert_eq!(decode_all(&mut decoder, Bytes::from(wire)).unwrap().len(), 1);
    }

    #[test]
    fn nothing_is_held_between_frames() {
        let mut decoder = StreamDecoder::new(1 << 20);
        let bytes = wire(&[Frame::Data {
            tag: 1,
            payload: Bytes::from(alloc::vec![1u8; 5000]),
        }]);
        for piece in bytes.chunks(7) {
            decode_all(&mut decoder, Bytes::copy_from_slice(piece)).unwrap();
        }
        assert_eq!(decoder.capacity(), 0);
    }

    #[test]
    fn a_datagram_with_a_cut_frame_is_malformed() {
        let mut bytes = Vec::new();
        Frame::Pong { id: 1, hold_us: 2 }.encode(&mut bytes);
        let mut cut = &bytes[..bytes.len() - 1];
        assert!(matches!(
            next_datagram_frame(&mut cut, 100),
            Err(ProtocolError::Malformed { .. })
        ));
        let mut whole = &bytes[..];
        assert_eq!(
            next_datagram_frame(&mut whole, 100),
            Ok(Some(Frame::Pong { id: 1, hold_us: 2 }))
        );
        assert_eq!(next_datagram_frame(&mut whole, 100), Ok(None));
    }
}
