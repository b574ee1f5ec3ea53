//! PSBTs (BIP174) as the node accepts them: every input spends a P2WPKH output that the
//! PSBT describes with a `witness_utxo`, the node computes each input's BIP143 sighash
//! itself, sees the outputs and the fee, and returns the PSBT with every input finalized.
//!
//! Refused: a base64 string over [`MAX_PSBT_LEN`] (checked before decoding), more than
//! [`MAX_PSBT_INPUTS`] inputs or [`MAX_PSBT_OUTPUTS`] outputs, no input or no output, an input
//! with only a `non_witness_utxo` or none, an input whose previous output is not P2WPKH, a
//! sighash type other than ALL, an input already finalized, a `non_witness_utxo` that
//! disagrees with the outpoint or the `witness_utxo` (the amount BIP143 commits to), outputs
//! worth more than the inputs. PSBT decoding, sighashes and witness encoding are
//! rust-bitcoin's; this module only decides what to accept.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bitcoin::hashes::Hash as _;
use bitcoin::psbt::{Input, Psbt};
use bitcoin::sighash::SighashCache;
use bitcoin::{Address, Amount, CompressedPublicKey, EcdsaSighashType, TxOut, Witness, ecdsa};
use k256::ecdsa::signature::hazmat::PrehashVerifier as _;

use super::network::BtcNetwork;
use crate::tx_error::TxError;

/// The longest base64 PSBT the node decodes: 256 KiB of text.
pub const MAX_PSBT_LEN: usize = 256 * 1024;
/// The most inputs a PSBT may spend.
pub const MAX_PSBT_INPUTS: usize = 64;
/// The most outputs a PSBT may create.
pub const MAX_PSBT_OUTPUTS: usize = 64;

/// One input: the P2WPKH output it spends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BtcInput {
    /// The previous transaction's id, in the usual (byte-reversed) hex.
    pub txid: String,
    /// The index of the output spent in it.
    pub vout: u32,
    /// HASH160 of the compressed key that owns the output (the P2WPKH program).
    pub pubkey_hash: [u8; 20],
    /// Its amount, in satoshis.
    pub amount_sats: u64,
}

/// Where an output pays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BtcDestination {
    /// A standard address, encoded for the PSBT's network.
    Address(String),
    /// An `OP_RETURN` (data carrier) output; its script, raw.
    OpReturn(Vec<u8>),
    /// A script that is no address; its script, raw.
    NonStandard(Vec<u8>),
}

/// One output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BtcOutput {
    /// Where it pays.
    pub destination: BtcDestination,
    /// Its amount, in satoshis.
    pub amount_sats: u64,
}

/// A PSBT that passed every check of [`BtcPsbt::parse`], with its sighashes computed.
#[derive(Debug, Clone, PartialEq)]
pub struct BtcPsbt {
    psbt: Psbt,
    network: BtcNetwork,
    inputs: Vec<BtcInput>,
    outputs: Vec<BtcOutput>,
    fee_sats: u64,
    sighashes: Vec<[u8; 32]>,
}

impl BtcPsbt {
    /// Decodes a base64 PSBT and checks everything the module documentation lists; the
    /// output addresses are encoded for `network`.
    pub fn parse(base64: &str, network: BtcNetwork) -> Result<Self, TxError> {
        let psbt = decode(base64)?;
        let tx = &psbt.unsigned_tx;
        check_counts(tx.input.len(), tx.output.len())?;

        let mut cache = SighashCache::new(tx);
        let mut inputs = Vec::with_capacity(tx.input.len());
        let mut sighashes = Vec::with_capacity(tx.input.len());
        let mut total_in = Amount::ZERO;
        for (index, (txin, input)) in tx.input.iter().zip(&psbt.inputs).enumerate() {
            let utxo = spendable_utxo(index, txin.previous_output, input)?;
            let pubkey_hash = utxo
                .script_pubkey
                .as_bytes()
                .get(2..22)
                .and_then(|program| <[u8; 20]>::try_from(program).ok())
                .ok_or(TxError::NotP2wpkh { index })?;
            let sighash = cache
                .p2wpkh_signature_hash(
                    index,
                    &utxo.script_pubkey,
                    utxo.value,
                    EcdsaSighashType::All,
                )
                .map_err(|e| TxError::Sighash {
                    index,
                    reason: e.to_string(),
                })?;
            total_in = add(total_in, utxo.value, "inputs")?;
            sighashes.push(sighash.to_byte_array());
            inputs.push(BtcInput {
                txid: txin.previous_output.txid.to_string(),
                vout: txin.previous_output.vout,
                pubkey_hash,
                amount_sats: utxo.value.to_sat(),
            });
        }

        let mut outputs = Vec::with_capacity(tx.output.len());
        let mut total_out = Amount::ZERO;
        for txout in &tx.output {
            total_out = add(total_out, txout.value, "outputs")?;
            outputs.push(BtcOutput {
                destination: destination(txout, network),
                amount_sats: txout.value.to_sat(),
            });
        }
        let fee = total_in
            .checked_sub(total_out)
            .ok_or(TxError::OutputsExceedInputs {
                inputs: total_in.to_sat(),
                outputs: total_out.to_sat(),
            })?;

        Ok(Self {
            psbt,
            network,
            inputs,
            outputs,
            fee_sats: fee.to_sat(),
            sighashes,
        })
    }

    /// The network the output addresses are encoded for.
    pub fn network(&self) -> BtcNetwork {
        self.network
    }

    /// The inputs, in order.
    pub fn inputs(&self) -> &[BtcInput] {
        &self.inputs
    }

    /// The outputs, in order.
    pub fn outputs(&self) -> &[BtcOutput] {
        &self.outputs
    }

    /// The fee in satoshis: the inputs' amounts minus the outputs'.
    pub fn fee(&self) -> u64 {
        self.fee_sats
    }

    /// Each input's BIP143 sighash with SIGHASH_ALL, in input order: what the node signs.
    pub fn sighashes(&self) -> Vec<[u8; 32]> {
        self.sighashes.clone()
    }

    /// Checks that every input belongs to `public_key` (a compressed SEC1 key): its P2WPKH
    /// program is the key's HASH160. The node signs no input of another key, so this runs
    /// before any share is contributed, and again in [`Self::finalize`].
    pub fn check_key(&self, public_key: &[u8; 33]) -> Result<(), TxError> {
        let key =
            CompressedPublicKey::from_slice(public_key).map_err(|_| TxError::InvalidPublicKey)?;
        let ours = key.wpubkey_hash().to_byte_array();
        match self
            .inputs
            .iter()
            .position(|input| input.pubkey_hash != ours)
        {
            Some(index) => Err(TxError::NotOurInput { index }),
            None => Ok(()),
        }
    }

    /// The signed PSBT, base64: each input gets the witness `[DER(r, s) || SIGHASH_ALL,
    /// public_key]` as its `final_script_witness`, and every other field but the UTXOs and
    /// unknown fields is cleared (BIP174's finalizer: partial signatures, sighash type,
    /// scripts and derivations). `signatures` holds one `(r, s)` per input, in order; a high
    /// `s` is normalized to low `s` (BIP62), and each signature must verify against the
    /// input's sighash and `public_key`, which must own every input.
    pub fn finalize(
        &self,
        public_key: &[u8; 33],
        signatures: &[([u8; 32], [u8; 32])],
    ) -> Result<String, TxError> {
        self.check_key(public_key)?;
        if signatures.len() != self.inputs.len() {
            return Err(TxError::SignatureCount {
                expected: self.inputs.len(),
                got: signatures.len(),
            });
        }
        let key =
            CompressedPublicKey::from_slice(public_key).map_err(|_| TxError::InvalidPublicKey)?;
        let verifier = k256::ecdsa::VerifyingKey::from_sec1_bytes(public_key)
            .map_err(|_| TxError::InvalidPublicKey)?;

        let mut psbt = self.psbt.clone();
        let per_input = psbt.inputs.iter_mut().zip(signatures).zip(&self.sighashes);
        for (index, ((input, (r, s)), sighash)) in per_input.enumerate() {
            let mut compact = [0u8; 64];
            let (r_half, s_half) = compact.split_at_mut(32);
            r_half.copy_from_slice(r);
            s_half.copy_from_slice(s);
            let mut signature = bitcoin::secp256k1::ecdsa::Signature::from_compact(&compact)
                .map_err(|_| TxError::BadSignature { index })?;
            signature.normalize_s();
            let check = k256::ecdsa::Signature::from_slice(&signature.serialize_compact())
                .map_err(|_| TxError::BadSignature { index })?;
            verifier
                .verify_prehash(sighash, &check)
                .map_err(|_| TxError::BadSignature { index })?;
            let witness = Witness::p2wpkh(
                &ecdsa::Signature {
                    signature,
                    sighash_type: EcdsaSighashType::All,
                },
                &key.0,
            );
            *input = Input {
                non_witness_utxo: input.non_witness_utxo.take(),
                witness_utxo: input.witness_utxo.take(),
                final_script_witness: Some(witness),
                unknown: std::mem::take(&mut input.unknown),
                ..Input::default()
            };
        }
        Ok(BASE64.encode(psbt.serialize()))
    }
}

/// The network transaction of a finalized PSBT (base64), in hex: what would be broadcast.
/// For tests and clients; the fee rate is not checked here.
pub fn extract_tx_hex(signed_psbt: &str) -> Result<String, TxError> {
    let psbt = decode(signed_psbt)?;
    let tx = psbt.extract_tx_unchecked_fee_rate();
    Ok(bitcoin::consensus::encode::serialize_hex(&tx))
}

/// The length limit, base64, then rust-bitcoin's PSBT decoding.
fn decode(base64: &str) -> Result<Psbt, TxError> {
    if base64.len() > MAX_PSBT_LEN {
        return Err(TxError::TooLong {
            what: "PSBT",
            len: base64.len(),
            max: MAX_PSBT_LEN,
        });
    }
    let bytes = BASE64.decode(base64).map_err(|_| TxError::Base64)?;
    Psbt::deserialize(&bytes).map_err(|e| TxError::Malformed {
        part: "PSBT",
        reason: e.to_string(),
    })
}

fn check_counts(inputs: usize, outputs: usize) -> Result<(), TxError> {
    if inputs == 0 {
        return Err(TxError::NoInputsOrOutputs { part: "inputs" });
    }
    if outputs == 0 {
        return Err(TxError::NoInputsOrOutputs { part: "outputs" });
    }
    if inputs > MAX_PSBT_INPUTS {
        return Err(TxError::TooManyInputs {
            count: inputs,
            max: MAX_PSBT_INPUTS,
        });
    }
    if outputs > MAX_PSBT_OUTPUTS {
        return Err(TxError::TooManyOutputs {
            count: outputs,
            max: MAX_PSBT_OUTPUTS,
        });
    }
    Ok(())
}

/// The P2WPKH output that input `index` spends, once everything about it checks out.
fn spendable_utxo(
    index: usize,
    outpoint: bitcoin::OutPoint,
    input: &Input,
) -> Result<&TxOut, TxError> {
    if input.final_script_sig.is_some() || input.final_script_witness.is_some() {
        return Err(TxError::AlreadyFinalized { index });
    }
    if let Some(requested) = input.sighash_type
        && requested.ecdsa_hash_ty() != Ok(EcdsaSighashType::All)
    {
        return Err(TxError::SighashType { index });
    }
    let utxo = input
        .witness_utxo
        .as_ref()
        .ok_or(TxError::MissingWitnessUtxo { index })?;
    if !utxo.script_pubkey.is_p2wpkh() {
        return Err(TxError::NotP2wpkh { index });
    }
    if utxo.value > Amount::MAX_MONEY {
        return Err(TxError::AmountTooLarge {
            field: "input amount",
        });
    }
    // The whole previous transaction is what proves the amount BIP143 commits to (its
    // txid is in the outpoint the signature covers); it is required, and must agree.
    let previous = input
        .non_witness_utxo
        .as_ref()
        .ok_or(TxError::MissingPreviousTransaction { index })?;
    let vout = usize::try_from(outpoint.vout).map_err(|_| TxError::UtxoMismatch { index })?;
    if previous.compute_txid() != outpoint.txid || previous.output.get(vout) != Some(utxo) {
        return Err(TxError::UtxoMismatch { index });
    }
    Ok(utxo)
}

fn add(total: Amount, amount: Amount, field: &'static str) -> Result<Amount, TxError> {
    total
        .checked_add(amount)
        .filter(|sum| *sum <= Amount::MAX_MONEY)
        .ok_or(TxError::AmountTooLarge { field })
}

fn destination(txout: &TxOut, network: BtcNetwork) -> BtcDestination {
    let script = &txout.script_pubkey;
    if script.is_op_return() {
        return BtcDestination::OpReturn(script.to_bytes());
    }
    match Address::from_script(script, network.to_bitcoin()) {
        Ok(address) => BtcDestination::Address(address.to_string()),
        Err(_) => BtcDestination::NonStandard(script.to_bytes()),
    }
}
