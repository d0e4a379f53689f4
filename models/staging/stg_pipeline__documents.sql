with

source as (

    select * from {{ source('pipeline', 'documents') }}

),

renamed as (

    select doi
    from source

)

select * from renamed
