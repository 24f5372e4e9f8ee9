// SPDX-License-Identifier: MIT
pragma solidity ^0.8.27;

import {ERC2771Forwarder} from "@openzeppelin/contracts/metatx/ERC2771Forwarder.sol";

/// @title FurusatoForwarder
/// @notice The platform's ERC-2771 forwarder: a relayer pays gas for requests a user signed
/// (EIP-712 bound to chain id, this contract, the user's nonce and a deadline).
contract FurusatoForwarder is ERC2771Forwarder {
    constructor() ERC2771Forwarder("FurusatoForwarder") {}
}
