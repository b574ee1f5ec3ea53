//! Unsigned Ethereum transactions as the node accepts them, their signing hash, and the
//! signed raw transaction it returns.
//!
//! Accepted: a legacy transaction with EIP-155 replay protection (the RLP list `[nonce,
//! gasPrice, gas, to, value, data, chainId, 0, 0]`, exactly what its signing hash covers) and
//! an EIP-1559 transaction (`0x02 || rlp([chainId, nonce, maxPriorityFee, maxFee, gas, to,
//! value, data, accessList])`). Refused: anything over [`MAX_ETH_TX_LEN`] (checked before
//! decoding), other transaction types, pre-EIP-155 legacy transactions and chain id 0,
//! contract creation, signed transactions, bytes after the transaction, a value above
//! `u128::MAX`, a malformed ERC-20 transfer, and any encoding that does not re-encode to the
//! same bytes. Decoding and encoding are alloy's; this module only decides what to accept.
//!
//! Every accepted transaction is byte for byte the preimage of its signing hash, so what the
//! policy evaluated is exactly what gets signed.

use alloy_consensus::transaction::RlpEcdsaDecodableTx;
use alloy_consensus::{SignableTransaction, Signed, TxEip1559, TxLegacy};
use alloy_primitives::{Signature, TxKind, U256};
use alloy_rlp::{Decodable, Header};

use super::erc20::{Calldata, CalldataKind, Erc20Transfer, classify, lower_hex_address};
use crate::address::eip55;
use crate::tx_error::TxError;

/// The largest transaction, unsigned or signed, that the node decodes: 128 KiB.
pub const MAX_ETH_TX_LEN: usize = 128 * 1024;

/// Which of the two accepted transaction types a transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EthTxType {
    /// Legacy, with EIP-155 replay protection.
    Legacy,
    /// EIP-1559 (type 2).
    Eip1559,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Unsigned {
    Legacy(TxLegacy),
    Eip1559(TxEip1559),
}

/// An unsigned Ethereum transaction that passed every check of [`EthTx::parse_unsigned`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EthTx {
    tx: Unsigned,
    chain_id: u64,
    to: String,
    value: u128,
    calldata: Calldata,
}

impl EthTx {
    /// Parses an unsigned legacy (EIP-155) or EIP-1559 transaction, refusing everything the
    /// module documentation lists.
    pub fn parse_unsigned(bytes: &[u8]) -> Result<Self, TxError> {
        let tx = match encoding(bytes)? {
            Encoding::Legacy => Unsigned::Legacy(decode_unsigned_legacy(bytes)?),
            Encoding::Eip1559(rlp) => Unsigned::Eip1559(decode_unsigned_eip1559(rlp)?),
        };
        let (chain_id, kind, value, input) = match &tx {
            Unsigned::Legacy(tx) => (tx.chain_id.unwrap_or(0), tx.to, tx.value, &tx.input),
            Unsigned::Eip1559(tx) => (tx.chain_id, tx.to, tx.value, &tx.input),
        };
        if chain_id == 0 {
            return Err(TxError::MissingChainId);
        }
        let TxKind::Call(to) = kind else {
            return Err(TxError::ContractCreation);
        };
        let value =
            u128::try_from(value).map_err(|_| TxError::AmountTooLarge { field: "value" })?;
        let to = lower_hex_address(to.as_slice());
        let calldata = classify(&to, input)?;
        let canonical = match &tx {
            Unsigned::Legacy(tx) => tx.encoded_for_signing(),
            Unsigned::Eip1559(tx) => tx.encoded_for_signing(),
        };
        if canonical != bytes {
            return Err(TxError::NotCanonical);
        }
        Ok(Self {
            tx,
            chain_id,
            to,
            value,
            calldata,
        })
    }

    /// Legacy or EIP-1559.
    pub fn tx_type(&self) -> EthTxType {
        match self.tx {
            Unsigned::Legacy(_) => EthTxType::Legacy,
            Unsigned::Eip1559(_) => EthTxType::Eip1559,
        }
    }

    /// The chain id (never 0).
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The destination, `0x` and 40 lower-case hex digits. For an ERC-20 transfer this is
    /// the token contract.
    pub fn to(&self) -> &str {
        &self.to
    }

    /// The native value sent, in wei. A value above `u128::MAX` was refused by the parser
    /// ([`TxError::AmountTooLarge`]), so every accepted amount fits the policy's arithmetic.
    pub fn value(&self) -> u128 {
        self.value
    }

    /// The sender's nonce.
    pub fn nonce(&self) -> u64 {
        match &self.tx {
            Unsigned::Legacy(tx) => tx.nonce,
            Unsigned::Eip1559(tx) => tx.nonce,
        }
    }

    /// What the calldata asks for. The node refuses [`CalldataKind::Other`]: it signs no
    /// contract call other than an ERC-20 `transfer`.
    pub fn calldata_kind(&self) -> CalldataKind {
        self.calldata.kind()
    }

    /// The ERC-20 transfer this transaction makes, if its calldata is one (a malformed
    /// transfer was refused by the parser). A transfer call may also carry a native
    /// [`Self::value`]; a policy must account for both.
    pub fn erc20_transfer(&self) -> Option<Erc20Transfer> {
        match &self.calldata {
            Calldata::Erc20Transfer(transfer) => Some(transfer.clone()),
            Calldata::Empty | Calldata::Other => None,
        }
    }

    /// The hash the transaction's signature covers, as alloy computes it: Keccak-256 of the
    /// EIP-155 signing payload (legacy) or of `0x02 || rlp(fields)` (EIP-1559), which is the
    /// parsed input itself.
    pub fn signing_hash(&self) -> [u8; 32] {
        match &self.tx {
            Unsigned::Legacy(tx) => tx.signature_hash().0,
            Unsigned::Eip1559(tx) => tx.signature_hash().0,
        }
    }

    /// The most the transaction can pay for gas, in wei: its gas limit times its gas
    /// price (legacy) or its maximum fee per gas (EIP-1559). `None` when that does not fit
    /// in 128 bits, which the node refuses.
    pub fn max_fee_wei(&self) -> Option<u128> {
        let (gas, price) = match &self.tx {
            Unsigned::Legacy(tx) => (tx.gas_limit, tx.gas_price),
            Unsigned::Eip1559(tx) => (tx.gas_limit, tx.max_fee_per_gas),
        };
        u128::from(gas).checked_mul(price)
    }

    /// The bytes whose Keccak-256 is [`Self::signing_hash`], encoded by alloy: what the
    /// nodes hash themselves when they sign the transaction, so that nobody chooses the
    /// digest directly (which signing from a presignature requires).
    pub fn signing_payload(&self) -> Vec<u8> {
        match &self.tx {
            Unsigned::Legacy(tx) => tx.encoded_for_signing(),
            Unsigned::Eip1559(tx) => tx.encoded_for_signing(),
        }
    }

    /// The signed raw transaction for the signature `(r, s)` over [`Self::signing_hash`]
    /// with recovery parity `y_parity`: a legacy transaction gets the EIP-155 `v`
    /// (`35 + 2 * chain_id + y_parity`), an EIP-1559 transaction its `y_parity`.
    ///
    /// A high `s` is refused, not normalized ([`TxError::HighS`]): EIP-2 makes such a
    /// transaction invalid, and normalizing it means flipping `y_parity` too, which is the
    /// signer's business. The signature is not checked against any key here: the caller
    /// verifies it (and [`recover_sender`] checks the result independently).
    pub fn signed_raw(&self, r: [u8; 32], s: [u8; 32], y_parity: bool) -> Result<Vec<u8>, TxError> {
        let scalars = k256::ecdsa::Signature::from_scalars(r, s)
            .map_err(|_| TxError::InvalidSignature { part: "r or s" })?;
        if scalars.normalize_s().is_some() {
            return Err(TxError::HighS);
        }
        let signature = Signature::new(U256::from_be_bytes(r), U256::from_be_bytes(s), y_parity);
        let mut out = Vec::new();
        match &self.tx {
            Unsigned::Legacy(tx) => tx.clone().into_signed(signature).rlp_encode(&mut out),
            Unsigned::Eip1559(tx) => tx.clone().into_signed(signature).eip2718_encode(&mut out),
        }
        Ok(out)
    }
}

/// Decodes a signed raw legacy (EIP-155) or EIP-1559 transaction and recovers its sender,
/// returned as an EIP-55 address (the form [`crate::eth_address`] gives). A signature with a
/// high `s`, a pre-EIP-155 legacy transaction and trailing bytes are refused. This is how a
/// client, or a test, checks every signed transaction independently of the signer.
pub fn recover_sender(raw_signed: &[u8]) -> Result<String, TxError> {
    let (signature, hash) = match encoding(raw_signed)? {
        Encoding::Legacy => {
            let mut buf = raw_signed;
            let signed =
                Signed::<TxLegacy>::rlp_decode(&mut buf).map_err(rlp("legacy transaction"))?;
            no_trailing_bytes(buf)?;
            if signed.tx().chain_id.unwrap_or(0) == 0 {
                return Err(TxError::MissingChainId);
            }
            (*signed.signature(), signed.signature_hash())
        }
        Encoding::Eip1559(_) => {
            let mut buf = raw_signed;
            let signed =
                Signed::<TxEip1559>::eip2718_decode(&mut buf).map_err(|e| TxError::Malformed {
                    part: "EIP-1559 transaction",
                    reason: e.to_string(),
                })?;
            no_trailing_bytes(buf)?;
            if signed.tx().chain_id == 0 {
                return Err(TxError::MissingChainId);
            }
            (*signed.signature(), signed.signature_hash())
        }
    };
    if signature.normalize_s().is_some() {
        return Err(TxError::HighS);
    }
    let address = signature
        .recover_address_from_prehash(&hash)
        .map_err(|_| TxError::Recovery)?;
    Ok(eip55(&address.into_array()))
}

/// How the bytes say they are encoded.
enum Encoding<'a> {
    /// An RLP list: a legacy transaction.
    Legacy,
    /// Type 2: what follows the type byte.
    Eip1559(&'a [u8]),
}

/// The length limit, then the first byte: an RLP list (legacy) or an EIP-2718 type byte.
fn encoding(bytes: &[u8]) -> Result<Encoding<'_>, TxError> {
    if bytes.len() > MAX_ETH_TX_LEN {
        return Err(TxError::TooLong {
            what: "transaction",
            len: bytes.len(),
            max: MAX_ETH_TX_LEN,
        });
    }
    let Some((first, rest)) = bytes.split_first() else {
        return Err(TxError::Empty);
    };
    match *first {
        0xc0..=0xff => Ok(Encoding::Legacy),
        0x02 => Ok(Encoding::Eip1559(rest)),
        ty @ 0x00..=0x7f => Err(TxError::UnsupportedTxType { ty }),
        _ => Err(TxError::Malformed {
            part: "transaction",
            reason: "neither an RLP list nor a typed transaction".to_owned(),
        }),
    }
}

/// The payload of the one RLP list that `bytes` must be, with nothing after it.
fn list_payload<'a>(bytes: &'a [u8], part: &'static str) -> Result<&'a [u8], TxError> {
    let mut buf = bytes;
    let header = Header::decode(&mut buf).map_err(rlp(part))?;
    if !header.list {
        return Err(TxError::Malformed {
            part,
            reason: "not an RLP list".to_owned(),
        });
    }
    let (payload, rest) =
        buf.split_at_checked(header.payload_length)
            .ok_or_else(|| TxError::Malformed {
                part,
                reason: "shorter than its RLP header says".to_owned(),
            })?;
    no_trailing_bytes(rest)?;
    Ok(payload)
}

/// `[nonce, gasPrice, gas, to, value, data, chainId, 0, 0]`: alloy decodes the six
/// transaction fields; the three EIP-155 fields must follow, and a non-zero `r` or `s` means
/// the transaction is signed (its `v` then stands where the chain id would).
fn decode_unsigned_legacy(bytes: &[u8]) -> Result<TxLegacy, TxError> {
    const PART: &str = "legacy transaction";
    let mut payload = list_payload(bytes, PART)?;
    let mut tx = TxLegacy::rlp_decode_fields(&mut payload).map_err(rlp(PART))?;
    if payload.is_empty() {
        return Err(TxError::MissingChainId);
    }
    let chain_id = u64::decode(&mut payload).map_err(rlp("legacy chain id"))?;
    let r = U256::decode(&mut payload).map_err(rlp("legacy EIP-155 r"))?;
    let s = U256::decode(&mut payload).map_err(rlp("legacy EIP-155 s"))?;
    if !payload.is_empty() {
        return Err(TxError::Malformed {
            part: PART,
            reason: "more than nine fields".to_owned(),
        });
    }
    if !r.is_zero() || !s.is_zero() {
        return Err(TxError::AlreadySigned);
    }
    tx.chain_id = Some(chain_id);
    Ok(tx)
}

/// `rlp([chainId, nonce, maxPriorityFee, maxFee, gas, to, value, data, accessList])` after
/// the type byte; three more fields that decode as a signature mean it is signed.
fn decode_unsigned_eip1559(rlp_bytes: &[u8]) -> Result<TxEip1559, TxError> {
    const PART: &str = "EIP-1559 transaction";
    let mut payload = list_payload(rlp_bytes, PART)?;
    let tx = TxEip1559::rlp_decode_fields(&mut payload).map_err(rlp(PART))?;
    if !payload.is_empty() {
        let signed =
            Signature::decode_rlp_vrs(&mut payload, bool::decode).is_ok() && payload.is_empty();
        return Err(if signed {
            TxError::AlreadySigned
        } else {
            TxError::Malformed {
                part: PART,
                reason: "more than nine fields".to_owned(),
            }
        });
    }
    Ok(tx)
}

fn no_trailing_bytes(rest: &[u8]) -> Result<(), TxError> {
    if rest.is_empty() {
        Ok(())
    } else {
        Err(TxError::TrailingBytes { count: rest.len() })
    }
}

fn rlp(part: &'static str) -> impl Fn(alloy_rlp::Error) -> TxError {
    move |error| TxError::Malformed {
        part,
        reason: error.to_string(),
    }
}

/// What an unsigned native transfer pays, for [`unsigned_transfer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer<'a> {
    pub chain_id: u64,
    pub nonce: u64,
    /// `0x` and 40 hex digits.
    pub to: &'a str,
    pub value: u128,
    pub gas_limit: u64,
    pub max_fee_per_gas: u128,
    pub max_priority_fee_per_gas: u128,
}

/// An unsigned EIP-1559 transaction paying `transfer.value` wei, encoded by alloy as the
/// node accepts it: for clients that ask the cluster to sign a payment.
pub fn unsigned_transfer(transfer: &Transfer<'_>) -> Result<Vec<u8>, TxError> {
    let to: alloy_primitives::Address =
        transfer
            .to
            .parse()
            .map_err(
                |e: alloy_primitives::hex::FromHexError| TxError::Malformed {
                    part: "destination address",
                    reason: e.to_string(),
                },
            )?;
    let tx = TxEip1559 {
        chain_id: transfer.chain_id,
        nonce: transfer.nonce,
        gas_limit: transfer.gas_limit,
        max_fee_per_gas: transfer.max_fee_per_gas,
        max_priority_fee_per_gas: transfer.max_priority_fee_per_gas,
        to: TxKind::Call(to),
        value: U256::from(transfer.value),
        access_list: Default::default(),
        input: Default::default(),
    };
    Ok(tx.encoded_for_signing())
}
