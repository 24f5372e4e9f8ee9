import {
    Entity as Entity_,
    Index as Index_,
    IntColumn as IntColumn_,
    PrimaryColumn as PrimaryColumn_,
    StringColumn as StringColumn_,
    BigIntColumn as BigIntColumn_,
} from '@subsquid/typeorm-store'

// One ERC-20 Transfer log, as squid-typeorm-codegen writes an entity (schema.sql is its table).
// UNIQUE (tx_hash, log_index) mirrors furusato's chain_events, so both pay for the same index.
@Entity_()
@Index_(['txHash', 'logIndex'], {unique: true})
export class Transfer {
    constructor(props?: Partial<Transfer>) {
        Object.assign(this, props)
    }

    @PrimaryColumn_()
    id!: string

    @IntColumn_({nullable: false})
    blockNumber!: number

    @StringColumn_({nullable: false})
    blockHash!: string

    @StringColumn_({nullable: false})
    txHash!: string

    @IntColumn_({nullable: false})
    logIndex!: number

    @StringColumn_({nullable: false})
    from!: string

    @StringColumn_({nullable: false})
    to!: string

    @BigIntColumn_({nullable: false})
    value!: bigint
}
