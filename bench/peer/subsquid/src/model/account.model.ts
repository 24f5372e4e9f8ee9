import {
    Entity as Entity_,
    PrimaryColumn as PrimaryColumn_,
    BigIntColumn as BigIntColumn_,
} from '@subsquid/typeorm-store'

// A holder's balance of the token (id: the lowercase address).
@Entity_()
export class Account {
    constructor(props?: Partial<Account>) {
        Object.assign(this, props)
    }

    @PrimaryColumn_()
    id!: string

    @BigIntColumn_({nullable: false})
    balance!: bigint
}
