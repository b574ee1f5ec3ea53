//! Arbitrary bytes as a provisioning message from a peer, an operator request and an
//! operator answer. Decoding may not panic; whatever decodes must encode and decode back
//! to the same value (a failed operation's JSON to the same failure). Peer reasons are
//! escaped on decode, so for those only the variant survives a round trip, and the text
//! must come out free of control characters.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::operator_api::{
    Answer, MAX_RESPONSE_LEN, OperatorRequest, decode, decode_answer, encode, encode_answer,
};
use protocol::peer::PeerMessage;

fn printable(reason: &str) -> bool {
    !reason.chars().any(char::is_control)
}

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = PeerMessage::decode(data) {
        let bytes = message.encode();
        let again = PeerMessage::decode(&bytes).expect("an encoded message decodes");
        match (&message, &again) {
            (PeerMessage::Unavailable { reason: a }, PeerMessage::Unavailable { reason: b })
            | (PeerMessage::Refused { reason: a }, PeerMessage::Refused { reason: b }) => {
                assert!(printable(a) && printable(b));
            }
            _ => {
                assert_eq!(again, message);
                assert_eq!(bytes.as_slice(), data);
            }
        }
    }

    if let Ok(request) = OperatorRequest::decode(data) {
        let bytes = request.encode();
        assert_eq!(bytes, data);
        assert_eq!(OperatorRequest::decode(&bytes), Ok(request));
    }

    match decode(data) {
        Ok(Answer::Failed(failure)) => {
            // Its JSON is not kept byte for byte; the failure is.
            let again = Answer::Failed(failure);
            let bytes = encode(&again);
            if bytes.get(..2) == Some(&[1, 2][..]) {
                assert_eq!(decode(&bytes), Ok(again));
            }
            assert!(decode_answer(data).is_ok_and(|a| a.is_err()));
        }
        Ok(_) => {
            let answer = decode_answer(data).expect("an answer of an earlier kind decodes as text");
            let text = match &answer {
                Ok(text) | Err(text) => text,
            };
            if text.len() <= MAX_RESPONSE_LEN - 2 {
                let bytes = encode_answer(&answer);
                if std::str::from_utf8(data.get(2..).unwrap_or_default()).is_ok() {
                    assert_eq!(bytes, data);
                }
                assert_eq!(decode_answer(&bytes), Ok(answer));
            }
        }
        Err(_) => assert!(decode_answer(data).is_err()),
    }
});
