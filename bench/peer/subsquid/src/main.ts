// The peer indexer of bench/peer.py: ERC-20 Transfer logs of one token into PostgreSQL (a
// Transfer row per log, an Account balance per holder), Subsquid's batch processor over RPC.
// Configured from the environment: RPC_URL, TOKEN, FROM_BLOCK, FINALITY (blocks to a final
// block; hot blocks above it are rolled back on a reorg), HEAD_POLL_MS, DB_URL.
import {EvmBatchProcessor} from '@subsquid/evm-processor'
import {TypeormDatabase} from '@subsquid/typeorm-store'
import {In} from 'typeorm'
import * as erc20 from './erc20'
import {Account, Transfer} from './model'

const env = (name: string): string => {
    const v = process.env[name]
    if (v == null || v === '') throw new Error(`${name} is not set`)
    return v
}

const TOKEN = env('TOKEN').toLowerCase()
const ZERO = '0x0000000000000000000000000000000000000000'

const processor = new EvmBatchProcessor()
    .setRpcEndpoint({url: env('RPC_URL'), rateLimit: 100_000})
    .setRpcDataIngestionSettings({headPollInterval: Number(process.env.HEAD_POLL_MS ?? 200)})
    .setFinalityConfirmation(Number(env('FINALITY')))
    .setBlockRange({from: Number(env('FROM_BLOCK'))})
    .setFields({log: {transactionHash: true}})
    .addLog({address: [TOKEN], topic0: [erc20.events.Transfer.topic]})

processor.run(new TypeormDatabase({supportHotBlocks: true}), async (ctx) => {
    const transfers: Transfer[] = []
    const deltas = new Map<string, bigint>()
    for (const block of ctx.blocks) {
        for (const log of block.logs) {
            if (log.address !== TOKEN || log.topics[0] !== erc20.events.Transfer.topic) continue
            const {from, to, value} = erc20.events.Transfer.decode(log)
            transfers.push(
                new Transfer({
                    id: log.id,
                    blockNumber: block.header.height,
                    blockHash: block.header.hash,
                    txHash: log.transactionHash,
                    logIndex: log.logIndex,
                    from,
                    to,
                    value,
                }),
            )
            if (from !== ZERO) deltas.set(from, (deltas.get(from) ?? 0n) - value)
            if (to !== ZERO) deltas.set(to, (deltas.get(to) ?? 0n) + value)
        }
    }
    if (transfers.length === 0) return
    const accounts = new Map(
        (await ctx.store.findBy(Account, {id: In([...deltas.keys()])})).map((a) => [a.id, a]),
    )
    for (const [id, delta] of deltas) {
        const a = accounts.get(id)
        if (a) a.balance += delta
        else accounts.set(id, new Account({id, balance: delta}))
    }
    await ctx.store.upsert([...accounts.values()])
    await ctx.store.insert(transfers)
})
