//! The one error type of transaction parsing and assembly, for both chains.
//!
//! Every refusal names what was wrong (the field, the input or output index), so that the
//! policy engine and the audit log can say why a request was refused. The `reason` strings
//! carry the underlying library's description and are for people, not for matching.

use thiserror::Error;

/// Why a transaction (or a PSBT) was refused, or could not be signed or assembled.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TxError {
    /// The input is larger than the format's limit; checked before anything is decoded.
    #[error("{what} is {len} bytes, more than the limit of {max}")]
    TooLong {
        /// What was too long: "transaction" or "PSBT".
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// No bytes at all.
    #[error("empty transaction")]
    Empty,
    /// An EIP-2718 transaction type other than legacy and EIP-1559 (0x02).
    #[error("transaction type {ty:#04x} is not supported (only legacy EIP-155 and EIP-1559)")]
    UnsupportedTxType {
        /// The type byte.
        ty: u8,
    },
    /// The bytes do not decode as the format says.
    #[error("malformed {part}: {reason}")]
    Malformed {
        /// Which part of the input.
        part: &'static str,
        /// What the decoder said.
        reason: String,
    },
    /// Bytes after the end of the transaction.
    #[error("{count} bytes after the end of the transaction")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// The transaction decodes, but re-encodes to other bytes: it is not in canonical form.
    #[error("the transaction is not canonically encoded")]
    NotCanonical,
    /// A legacy transaction without EIP-155 replay protection, or a chain id of zero.
    #[error("the transaction names no chain (pre-EIP-155 legacy or chain id 0)")]
    MissingChainId,
    /// The transaction already carries a signature; only unsigned transactions are signed.
    #[error("the transaction is already signed")]
    AlreadySigned,
    /// A transaction without a destination (contract creation) is never signed.
    #[error("contract creation is not supported")]
    ContractCreation,
    /// An amount does not fit the type the policy evaluates amounts in.
    #[error("{field} is larger than the largest amount supported")]
    AmountTooLarge {
        /// The field: "value", "erc20 amount", an output, ...
        field: &'static str,
    },
    /// Calldata with the ERC-20 `transfer` selector that is not a well-formed transfer call.
    #[error("malformed ERC-20 transfer: {reason}")]
    MalformedErc20Transfer {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `r` or `s` is zero or not below the curve order.
    #[error("the signature's {part} is not a valid scalar")]
    InvalidSignature {
        /// "r", "s" or "r or s".
        part: &'static str,
    },
    /// The signature's `s` is in the upper half of the curve order (refused by EIP-2 and by
    /// Bitcoin's standardness rules; normalize it first).
    #[error("the signature's s is high")]
    HighS,
    /// No sender could be recovered from a signed transaction.
    #[error("no sender can be recovered from the signature")]
    Recovery,
    /// The PSBT is not valid base64.
    #[error("the PSBT is not valid base64")]
    Base64,
    /// The PSBT spends no input or creates no output.
    #[error("the PSBT has no {part}")]
    NoInputsOrOutputs {
        /// "inputs" or "outputs".
        part: &'static str,
    },
    /// More inputs than [`crate::btc::MAX_PSBT_INPUTS`].
    #[error("the PSBT has {count} inputs, more than {max}")]
    TooManyInputs {
        /// How many it has.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// More outputs than [`crate::btc::MAX_PSBT_OUTPUTS`].
    #[error("the PSBT has {count} outputs, more than {max}")]
    TooManyOutputs {
        /// How many it has.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// An input without a `witness_utxo` (a `non_witness_utxo` alone is not enough).
    #[error("input {index} has no witness UTXO")]
    MissingWitnessUtxo {
        /// The input.
        index: usize,
    },
    /// An input without its whole previous transaction (`non_witness_utxo`): without it
    /// the amount a BIP143 signature commits to is only the requester's word, and two
    /// PSBTs of one transaction, each understating another input, could hide a fee.
    #[error("input {index} has no previous transaction (non_witness_utxo)")]
    MissingPreviousTransaction {
        /// The input.
        index: usize,
    },
    /// An input whose previous output is not P2WPKH.
    #[error("input {index} does not spend a P2WPKH output")]
    NotP2wpkh {
        /// The input.
        index: usize,
    },
    /// An input that asks for a sighash type other than ALL.
    #[error("input {index} asks for a sighash type other than ALL")]
    SighashType {
        /// The input.
        index: usize,
    },
    /// An input whose `non_witness_utxo` disagrees with its outpoint or its `witness_utxo`.
    #[error("input {index}: its previous transaction does not match its outpoint and UTXO")]
    UtxoMismatch {
        /// The input.
        index: usize,
    },
    /// An input that is already finalized.
    #[error("input {index} is already finalized")]
    AlreadyFinalized {
        /// The input.
        index: usize,
    },
    /// The outputs spend more than the inputs bring.
    #[error("the outputs ({outputs} sat) exceed the inputs ({inputs} sat)")]
    OutputsExceedInputs {
        /// Sum of the inputs, satoshis.
        inputs: u64,
        /// Sum of the outputs, satoshis.
        outputs: u64,
    },
    /// The BIP143 sighash of an input could not be computed.
    #[error("input {index}: {reason}")]
    Sighash {
        /// The input.
        index: usize,
        /// What the library said.
        reason: String,
    },
    /// The public key is not a valid compressed secp256k1 point.
    #[error("the public key is not a valid compressed secp256k1 key")]
    InvalidPublicKey,
    /// An input that the given key does not own: the node signs only its own key's inputs.
    #[error("input {index} does not belong to the signing key")]
    NotOurInput {
        /// The input.
        index: usize,
    },
    /// Not one signature per input.
    #[error("{got} signatures for {expected} inputs")]
    SignatureCount {
        /// The number of inputs.
        expected: usize,
        /// The number of signatures given.
        got: usize,
    },
    /// A signature that is not valid for its input's sighash and the key.
    #[error("the signature for input {index} does not verify")]
    BadSignature {
        /// The input.
        index: usize,
    },
    /// A Bitcoin network name that is not known.
    #[error("unknown Bitcoin network {name:?}")]
    UnknownNetwork {
        /// The name given.
        name: String,
    },
}
