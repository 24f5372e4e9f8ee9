// What `squid-evm-typegen` writes for the ERC-20 Transfer event.
import {event, indexed} from '@subsquid/evm-abi'
import * as p from '@subsquid/evm-codec'

export const events = {
    Transfer: event(
        '0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef',
        'Transfer(address,address,uint256)',
        {from: indexed(p.address), to: indexed(p.address), value: p.uint256},
    ),
}
