//! What an Ethereum transaction's calldata asks for, as far as the policy needs to know.
//!
//! The node understands exactly one contract call: ERC-20 `transfer(address,uint256)`, whose
//! calldata is the selector `a9059cbb` followed by exactly two 32-byte ABI words. Every other
//! non-empty calldata is [`CalldataKind::Other`], which the policy refuses: the node does not
//! sign contract calls whose effect it cannot evaluate. Calldata that carries the `transfer`
//! selector but is not a well-formed transfer (wrong length, an address word with non-zero
//! high bytes, an amount above `u128::MAX`) is an error, never `Other`: a transfer the node
//! cannot evaluate is refused outright, not mistaken for some other call.

use crate::tx_error::TxError;

/// The selector of `transfer(address,uint256)`: the first four bytes of its Keccak-256.
pub const ERC20_TRANSFER_SELECTOR: [u8; 4] = [0xa9, 0x05, 0x9c, 0xbb];

/// The kind of calldata a transaction carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalldataKind {
    /// No calldata: a plain transfer of the native coin.
    Empty,
    /// An ERC-20 `transfer(address,uint256)` call.
    Erc20Transfer,
    /// Any other contract call. The node refuses these.
    Other,
}

/// An ERC-20 `transfer` call: `token` is the transaction's destination (the token contract).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erc20Transfer {
    /// The token contract, `0x` and 40 lower-case hex digits.
    pub token: String,
    /// Who receives the tokens, `0x` and 40 lower-case hex digits.
    pub recipient: String,
    /// The amount, in the token's base units.
    pub amount: u128,
}

/// The parsed calldata: what [`classify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Calldata {
    Empty,
    Erc20Transfer(Erc20Transfer),
    Other,
}

impl Calldata {
    pub(crate) fn kind(&self) -> CalldataKind {
        match self {
            Self::Empty => CalldataKind::Empty,
            Self::Erc20Transfer(_) => CalldataKind::Erc20Transfer,
            Self::Other => CalldataKind::Other,
        }
    }
}

/// Classifies `data`, sent to `to` (lower-case hex address).
pub(crate) fn classify(to: &str, data: &[u8]) -> Result<Calldata, TxError> {
    let Some((selector, args)) = data.split_first_chunk::<4>() else {
        return Ok(if data.is_empty() {
            Calldata::Empty
        } else {
            Calldata::Other
        });
    };
    if *selector != ERC20_TRANSFER_SELECTOR {
        return Ok(Calldata::Other);
    }
    let Ok(words) = <&[u8; 64]>::try_from(args) else {
        return Err(TxError::MalformedErc20Transfer {
            reason: "the arguments are not exactly two 32-byte words",
        });
    };
    let (address_word, amount_word) = words.split_at(32);
    let (padding, recipient) = address_word.split_at(12);
    if padding.iter().any(|b| *b != 0) {
        return Err(TxError::MalformedErc20Transfer {
            reason: "the recipient word is not a canonical address",
        });
    }
    let (high, low) = amount_word.split_at(16);
    if high.iter().any(|b| *b != 0) {
        return Err(TxError::AmountTooLarge {
            field: "erc20 amount",
        });
    }
    let low: [u8; 16] = low
        .try_into()
        .map_err(|_| TxError::MalformedErc20Transfer {
            reason: "the amount word is not 32 bytes",
        })?;
    Ok(Calldata::Erc20Transfer(Erc20Transfer {
        token: to.to_owned(),
        recipient: lower_hex_address(recipient),
        amount: u128::from_be_bytes(low),
    }))
}

/// `0x` and the lower-case hex of `bytes`.
pub(crate) fn lower_hex_address(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(2 + 2 * bytes.len());
    out.push_str("0x");
    out.push_str(&crate::address::hex(bytes));
    out
}
